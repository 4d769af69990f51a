//! Lab steps for the UMS (seed 003's business messaging): phones that take chat and SMS (or
//! SMS only), a template registered and approved, and a send through the UMS's REST API with
//! each recipient's final line checked as `rcslab ums send` prints it.
//!
//! ```toml
//! [[step]]
//! do = "ums-phone"      # a phone: an RCS client with SMS over IP
//! user = "carol"
//! hold = true           # its chat client leaves chats unanswered (no IMDN comes)
//! chat = false          # (instead) an SMS-only phone: OPTIONS answered without RCS tags
//!
//! [[step]]
//! do = "ums-template"
//! template = "otp"
//! text = "Your code is #{code}"
//!
//! [[step]]
//! do = "ums-send"
//! members = ["bob", "carol"]
//! template = "otp"      # or text = "..."
//! vars = { code = "1234" }
//! expect = "+15550002: delivered (rcs); +15550003: delivered (sms)"
//! ```

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::sms::number_of;
use super::Step;
use crate::lab::Lab;
use crate::sip::Method as SipMethod;
use crate::ue::chat::{ChatOptions, ChatUe};
use crate::ue::sms::{SmsOptions, SmsUe};
use crate::ue::{uas_response, Ue, UeConfig};

/// Why a UMS step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum UmsStepError {
    #[error("{0}")]
    Bad(String),
    #[error("UMS API: {0}")]
    Api(String),
    #[error("expected {want:?}, got {got:?}")]
    Outcome { want: String, got: String },
}

/// The phones of a run (kept alive until it ends).
#[derive(Default)]
pub(super) struct UmsPhones {
    chats: HashMap<String, ChatUe>,
    sms: HashMap<String, SmsUe>,
}

impl UmsPhones {
    pub(super) async fn step(
        &mut self,
        lab: &Lab,
        s: &Step,
        shut: &watch::Receiver<bool>,
    ) -> Result<(), UmsStepError> {
        match s.action.as_str() {
            "ums-phone" => self.phone(lab, s, shut).await,
            "ums-template" => template(lab, s).await,
            "ums-send" => send(lab, s).await,
            other => Err(UmsStepError::Bad(format!("unknown action '{other}'"))),
        }
    }

    async fn phone(
        &mut self,
        lab: &Lab,
        s: &Step,
        shut: &watch::Receiver<bool>,
    ) -> Result<(), UmsStepError> {
        // The UMS's chatbot registers when the lab starts: a lab about it waits for that
        // before its phones, so that its REGISTER is not in the ladder of what follows.
        if !lab.config.ums.rcs_user.is_empty() {
            for _ in 0..100 {
                if lab.ums.rcs_on() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let user = s.user.clone().unwrap_or_default();
        let cfg = UeConfig::from_lab(&lab.config, &user, lab.addrs.pcscf)
            .ok_or_else(|| UmsStepError::Bad(format!("no user '{user}' in the lab")))?;
        let mut ue = Ue::start(cfg, lab.trace.clone(), shut.clone())
            .await
            .map_err(|e| UmsStepError::Bad(e.to_string()))?;
        lab.name_addr(ue.local_addr(), &format!("UE {user}"));
        ue.register(600)
            .await
            .map_err(|e| UmsStepError::Bad(e.to_string()))?;
        self.sms
            .insert(user.clone(), SmsUe::start(&mut ue, SmsOptions::default()));
        // `chat = false` is read as "not an RCS phone" only when `hold` is not given.
        if s.chat || s.hold {
            let chat = ChatUe::start(
                ue,
                lab.trace.clone(),
                ChatOptions {
                    hold_invites: s.hold,
                    ..ChatOptions::default()
                },
            );
            self.chats.insert(user, chat);
        } else {
            tokio::spawn(sms_only(ue));
        }
        super::settle().await;
        Ok(())
    }
}

/// A phone with SMS over IP but no RCS client (a VoLTE phone): it answers OPTIONS with 200
/// and a Contact carrying only `+g.3gpp.smsip`, and refuses anything else it is sent.
async fn sms_only(mut ue: Ue) {
    let contact = ue.contact();
    while let Some(inc) = ue.next_request(Duration::from_secs(3600)).await {
        let r = match inc.request.method {
            SipMethod::Options => {
                let mut ok = uas_response(&inc.request, 200, "volte", &contact, None);
                ok.headers.remove("Contact");
                ok.headers.push(
                    "Contact",
                    format!("<{contact}>;{}", crate::smsc::register::SMSIP_TAG),
                );
                ok
            }
            SipMethod::Ack => continue,
            _ => uas_response(&inc.request, 488, "volte", &contact, None),
        };
        inc.tx.respond(r);
    }
}

async fn call(
    lab: &Lab,
    operator: bool,
    m: Method,
    path: &str,
    body: Value,
) -> Result<Value, UmsStepError> {
    let addr = lab.ums.local_addr();
    let (business, op) = lab.ums.tokens();
    let token = if operator { op } else { business };
    let req = Request::builder()
        .method(m)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| UmsStepError::Api(e.to_string()))?;
    let (status, b) = crate::http_client::send(addr, req, Duration::from_secs(10))
        .await
        .map_err(|e| UmsStepError::Api(e.to_string()))?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    if status >= 300 {
        return Err(UmsStepError::Api(format!("{path}: {status} {v}")));
    }
    Ok(v)
}

/// Registers the template and approves it with the operator's token.
async fn template(lab: &Lab, s: &Step) -> Result<(), UmsStepError> {
    let id = s
        .template
        .clone()
        .ok_or_else(|| UmsStepError::Bad("needs `template`".into()))?;
    let text = s
        .text
        .clone()
        .ok_or_else(|| UmsStepError::Bad("needs `text`".into()))?;
    call(
        lab,
        false,
        Method::POST,
        "/ums/v1/templates",
        json!({"id": id, "text": text}),
    )
    .await?;
    call(
        lab,
        true,
        Method::POST,
        &format!("/ums/v1/templates/{id}/approve"),
        Value::Null,
    )
    .await?;
    Ok(())
}

/// One recipient's line as `rcslab ums send` prints it.
fn line(r: &Value) -> String {
    let to = r["to"].as_str().unwrap_or("?");
    let mut channel = r["channel"].as_str().unwrap_or("?").to_string();
    if r["fell_back"].as_bool() == Some(true) {
        channel.push_str(", fell back from rcs");
    }
    match r["status"].as_str() {
        Some(st @ ("delivered" | "read")) => format!("{to}: {st} ({channel})"),
        Some("failed") => format!("{to}: failed ({channel})"),
        _ => format!("{to}: pending"),
    }
}

/// Sends through the UMS and waits (at most 30 s) until every recipient's line is the one
/// `expect` lists (`; ` between lines).
async fn send(lab: &Lab, s: &Step) -> Result<(), UmsStepError> {
    let mut recipients = Vec::new();
    for m in &s.members {
        let (tel, _) = number_of(lab, m).map_err(|e| UmsStepError::Bad(e.to_string()))?;
        recipients.push(tel.trim_start_matches("tel:").to_string());
    }
    let mut body = json!({ "recipients": recipients });
    match (&s.template, &s.text) {
        (Some(t), _) => body["template"] = json!({"id": t, "variables": s.vars}),
        (None, Some(text)) => body["text"] = json!(text),
        (None, None) => return Err(UmsStepError::Bad("needs `text` or `template`".into())),
    }
    if !s.suggestions.is_empty() {
        body["suggestions"] = json!(s.suggestions);
    }
    let taken = call(lab, false, Method::POST, "/ums/v1/messages", body).await?;
    let id = taken["id"].as_str().unwrap_or_default().to_string();
    let want: Vec<String> = s
        .expect
        .as_deref()
        .unwrap_or_default()
        .split(';')
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = call(
            lab,
            false,
            Method::GET,
            &format!("/ums/v1/messages/{id}"),
            Value::Null,
        )
        .await?;
        let got: Vec<String> = m["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .map(line)
            .collect();
        if got == want {
            super::group::quiet(lab).await;
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(UmsStepError::Outcome {
                want: want.join("; "),
                got: got.join("; "),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
