//! `rcslab ums`: the unified-messaging gateway's business API from the command line, on a
//! running lab (its address in `DIR/ums/api.addr`, the business token in `DIR/ums/api.token`
//! or `[ums] token`, the operator's in `DIR/ums/operator.token` or `[ums] operator_token`).
//! `send` waits until every recipient is final and prints one line each, which scripts rely
//! on: `+15550002: delivered (sms)`, `+15550099: failed (sms): REASON`, `+15550002: pending`;
//! over RCS `+15550002: delivered (rcs)` or `read (rcs)`, and a recipient that got chat first
//! and then SMS `+15550002: delivered (sms, fell back from rcs)`. `send --media FILE` uploads
//! the file first and sends it as MMS (`delivered (mms)`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::Subcommand;
use http_body_util::Full;
use hyper::{Method, Request};

use super::{load_config, CliError, Common, Result};

#[derive(Subcommand)]
pub enum UmsCmd {
    /// Sends a text, or an approved template with its variables, or media (RCS file or MMS) to numbers;
    /// waits until each is delivered or failed (exit 1 if any failed or is still pending).
    Send {
        /// A recipient (E.164 with '+'); repeat for more.
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// The text (plain-text message).
        #[arg(
            long,
            conflicts_with = "template",
            required_unless_present_any = ["template", "media"]
        )]
        text: Option<String>,
        /// An approved template's id.
        #[arg(long)]
        template: Option<String>,
        /// A template variable, NAME=VALUE; repeat for more.
        #[arg(long = "var", requires = "template")]
        vars: Vec<String>,
        /// auto (RCS chat where the phone takes it, falling back to SMS; else SMS, LMS for
        /// a longer text; with --media an RCS file transfer falling back to MMS), rcs, sms, lms or
        /// mms.
        #[arg(long, default_value = "auto")]
        channel: String,
        /// A reply suggested to RCS recipients (a chatbot card's chip); repeat for more.
        #[arg(long = "suggest")]
        suggest: Vec<String>,
        /// A file to send (uploaded first): an RCS file transfer or MMS by --channel (--text is the
        /// MMS's subject).
        #[arg(long)]
        media: Option<PathBuf>,
        /// The media's type; by default guessed from the file name's extension.
        #[arg(long = "type", requires = "media")]
        media_type: Option<String>,
        /// Seconds to wait for every recipient to be final (longer than `[ums]
        /// fallback_secs`, so that a recipient who falls back to SMS is seen delivered).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Templates: register one, approve one (the operator's token), show one.
    Template {
        #[command(subcommand)]
        cmd: TemplateCmd,
    },
    /// A message's recipients, one line each, as `send` prints them.
    Status {
        /// The message id `send` printed (`m42`).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum TemplateCmd {
    /// Registers a template (pending until approved); placeholders are `#{name}`.
    Add { id: String, text: String },
    /// Approves a template (with the operator's token).
    Approve { id: String },
    /// Shows a template and its status.
    Show { id: String },
}

/// The running gateway's API.
struct Api {
    addr: SocketAddr,
    dir: PathBuf,
    max_media_size: usize,
    business: Option<String>,
    operator: Option<String>,
}

fn read_trimmed(p: &Path) -> Option<String> {
    let t = std::fs::read_to_string(p).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

impl Api {
    fn find(common: &Common) -> Result<Api> {
        let config = load_config(common)?;
        let dir = common.data_dir.join("ums");
        let addr = read_trimmed(&dir.join(rcslab::ums::ADDR_FILE))
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| CliError::NoLab(common.data_dir.clone()))?;
        let pick = |given: &str, file: &str| {
            if given.is_empty() {
                read_trimmed(&dir.join(file))
            } else {
                Some(given.to_string())
            }
        };
        Ok(Api {
            addr,
            max_media_size: config.ums.max_media_size,
            business: pick(&config.ums.token, rcslab::ums::API_TOKEN_FILE),
            operator: pick(&config.ums.operator_token, rcslab::ums::OPERATOR_TOKEN_FILE),
            dir,
        })
    }

    async fn call(
        &self,
        operator: bool,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let body = Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
        self.request(operator, method, path, "application/json", body)
            .await
    }

    async fn request(
        &self,
        operator: bool,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<serde_json::Value> {
        let token = if operator {
            &self.operator
        } else {
            &self.business
        };
        let file = if operator {
            rcslab::ums::OPERATOR_TOKEN_FILE
        } else {
            rcslab::ums::API_TOKEN_FILE
        };
        let token = token.as_ref().ok_or_else(|| CliError::File {
            path: self.dir.join(file),
            detail: "no token here (is this the lab's --data-dir?)".into(),
        })?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| CliError::Unexpected(e.to_string()))?;
        let (status, body) =
            rcslab::http_client::send(self.addr, req, Duration::from_secs(10)).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !(200..300).contains(&status) {
            let why = match (v["error"].as_str(), v["detail"].as_str()) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                _ => String::from_utf8_lossy(&body).to_string(),
            };
            return Err(CliError::Answered { status, body: why });
        }
        Ok(v)
    }
}

/// A media type by the file name's extension.
fn media_type_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "amr" => "audio/amr",
        "txt" => "text/plain",
        "vcf" => "text/vcard",
        _ => "application/octet-stream",
    }
}

/// Uploads `path` (at most `[ums] max_media_size` bytes): its media id.
async fn upload(api: &Api, path: &Path, media_type: Option<String>) -> Result<String> {
    let file_err = |detail: String| CliError::File {
        path: path.to_path_buf(),
        detail,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| file_err(e.to_string()))?
        .len();
    if len > api.max_media_size as u64 {
        return Err(file_err(format!(
            "{len} bytes; the gateway takes media of up to {} ([ums] max_media_size)",
            api.max_media_size
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let ct = media_type.unwrap_or_else(|| media_type_of(path).to_string());
    let up = api
        .request(
            false,
            Method::POST,
            "/ums/v1/media",
            &ct,
            Bytes::from(bytes),
        )
        .await?;
    let id = up["id"].as_str().unwrap_or_default().to_string();
    eprintln!("media {id} ({ct}, {len} bytes)");
    Ok(id)
}

/// One recipient's line.
fn line(r: &serde_json::Value) -> (String, bool) {
    let to = r["to"].as_str().unwrap_or("?");
    let channel = match (
        r["channel"].as_str().unwrap_or("sms"),
        r["fell_back"].as_bool(),
    ) {
        (c, Some(true)) => format!("{c}, fell back from rcs"),
        (c, _) => c.to_string(),
    };
    match r["status"].as_str() {
        Some("delivered") => (format!("{to}: delivered ({channel})"), true),
        Some("read") => (format!("{to}: read ({channel})"), true),
        Some("failed") => (
            format!(
                "{to}: failed ({channel}): {}",
                r["detail"].as_str().unwrap_or("")
            ),
            true,
        ),
        _ => (format!("{to}: pending"), false),
    }
}

/// Prints every recipient's line; Err when any is not delivered.
fn report(m: &serde_json::Value) -> Result<()> {
    let mut bad = 0;
    for r in m["recipients"].as_array().into_iter().flatten() {
        let (l, _) = line(r);
        println!("{l}");
        if !matches!(r["status"].as_str(), Some("delivered" | "read")) {
            bad += 1;
        }
    }
    if bad > 0 {
        return Err(CliError::NotDelivered(format!(
            "{bad} recipient(s) not delivered"
        )));
    }
    Ok(())
}

pub async fn run(cmd: UmsCmd, common: Common) -> Result<()> {
    let api = Api::find(&common)?;
    match cmd {
        UmsCmd::Send {
            to,
            text,
            template,
            vars,
            channel,
            suggest,
            media,
            media_type,
            timeout,
        } => {
            let mut body = serde_json::json!({ "recipients": to, "channel": channel });
            if !suggest.is_empty() {
                body["suggestions"] = serde_json::json!(suggest);
            }
            if let Some(path) = media {
                body["media"] = serde_json::Value::String(upload(&api, &path, media_type).await?);
            }
            if let Some(id) = template {
                let mut variables = serde_json::Map::new();
                for kv in vars {
                    let Some((k, v)) = kv.split_once('=') else {
                        return Err(CliError::Usage(format!("--var {kv}: NAME=VALUE")));
                    };
                    variables.insert(k.to_string(), serde_json::Value::String(v.to_string()));
                }
                body["template"] = serde_json::json!({ "id": id, "variables": variables });
            } else if let Some(text) = text {
                body["text"] = serde_json::Value::String(text);
            }
            let taken = api
                .call(false, Method::POST, "/ums/v1/messages", Some(body))
                .await?;
            let id = taken["id"].as_str().unwrap_or_default().to_string();
            eprintln!("message {id}");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
            loop {
                let m = api
                    .call(false, Method::GET, &format!("/ums/v1/messages/{id}"), None)
                    .await?;
                let all_final = m["recipients"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|r| line(r).1);
                if all_final || tokio::time::Instant::now() >= deadline {
                    return report(&m);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        UmsCmd::Status { id } => {
            let m = api
                .call(false, Method::GET, &format!("/ums/v1/messages/{id}"), None)
                .await?;
            report(&m)
        }
        UmsCmd::Template { cmd } => {
            let t = match cmd {
                TemplateCmd::Add { id, text } => {
                    api.call(
                        false,
                        Method::POST,
                        "/ums/v1/templates",
                        Some(serde_json::json!({ "id": id, "text": text })),
                    )
                    .await?
                }
                TemplateCmd::Approve { id } => {
                    api.call(
                        true,
                        Method::POST,
                        &format!("/ums/v1/templates/{id}/approve"),
                        None,
                    )
                    .await?
                }
                TemplateCmd::Show { id } => {
                    api.call(false, Method::GET, &format!("/ums/v1/templates/{id}"), None)
                        .await?
                }
            };
            println!(
                "{}: {} ({})",
                t["id"].as_str().unwrap_or("?"),
                t["status"].as_str().unwrap_or("?"),
                t["text"].as_str().unwrap_or("")
            );
            Ok(())
        }
    }
}
