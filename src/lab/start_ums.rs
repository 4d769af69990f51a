//! Starting UMS, the unified-messaging gateway ([`crate::ums`]): its tokens under
//! `DIR/ums/` (made at the first start unless `[ums]` gives them), its trees in the store it
//! is handed, its API on a bound listener, its SMPP session to the SMS centre at `smsc`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::nodes::{token, Ctx, Peers};
use super::LabError;
use crate::store::Store;

/// Where the gateway keeps its tokens and API address: `DIR/ums`.
pub(crate) fn ums_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("ums")
}

/// UMS, serving its API on `listener` and binding to the SMS centre's SMPP listener `smsc`;
/// templates and messages in `store`'s sled db. Writes the API's address to
/// `DIR/ums/api.addr` for `rcslab ums`.
pub(crate) fn start_ums(
    ctx: &Ctx<'_>,
    listener: TcpListener,
    smsc: SocketAddr,
    store: &Store,
    data_dir: &Path,
    peers: &Peers,
) -> Result<Arc<crate::ums::Ums>, LabError> {
    let u = &ctx.config.ums;
    let dir = ums_dir(data_dir);
    let store_err = |detail: String| LabError::Store {
        dir: dir.display().to_string(),
        source: crate::store::StoreError::Invalid(detail),
    };
    std::fs::create_dir_all(&dir).map_err(|e| store_err(e.to_string()))?;
    let given_or_file = |given: &str, file: &str| -> Result<String, LabError> {
        if given.is_empty() {
            token(&dir, file)
        } else {
            Ok(given.to_string())
        }
    };
    let settings = crate::ums::UmsSettings {
        token: given_or_file(&u.token, crate::ums::API_TOKEN_FILE)?,
        operator_token: given_or_file(&u.operator_token, crate::ums::OPERATOR_TOKEN_FILE)?,
        system_id: u.system_id.clone(),
        password: u.password.clone(),
        sender: u.sender.clone(),
        webhook: u.webhook.clone(),
        webhook_queue: u.webhook_queue,
        limits: crate::ums::core::Limits {
            max_recipients: u.max_recipients,
            max_templates: u.max_templates,
            max_messages: u.max_messages,
            max_pending: u.max_pending,
        },
        window: u.smpp_window,
        media: crate::ums::MediaLimits {
            max_size: u.max_media_size,
            max_count: u.max_media,
            max_total: u.max_media_total,
        },
        smsc,
        http: (&ctx.config.http).into(),
        rcs: rcs_settings(ctx, peers, &dir),
    };
    let ums = crate::ums::Ums::start(
        settings,
        store.db(),
        store.commit().clone(),
        listener,
        ctx.trace.clone(),
        ctx.shut.clone(),
    )
    .map_err(|source| LabError::Ums {
        dir: dir.display().to_string(),
        source,
    })?;
    let _ = std::fs::write(
        dir.join(crate::ums::ADDR_FILE),
        ums.local_addr().to_string(),
    );
    Ok(ums)
}

/// The RCS channel of `[ums]`: its chatbot identity's credentials from `[[subscribers]]`;
/// None (SMS only) when `rcs_user` is empty or names nobody (said in the log).
fn rcs_settings(ctx: &Ctx<'_>, peers: &Peers, dir: &Path) -> Option<crate::ums::rcs::RcsSettings> {
    let pcscf = peers.pcscf;
    let u = &ctx.config.ums;
    if u.rcs_user.is_empty() {
        return None;
    }
    let Some(mut ue) = crate::ue::UeConfig::from_lab(ctx.config, &u.rcs_user, pcscf) else {
        tracing::info!(user = %u.rcs_user, "UMS: [ums] rcs_user is no subscriber of the lab: RCS is off, SMS only");
        return None;
    };
    ue.extra_tags = crate::ums::rcs::chatbot_tags();
    Some(crate::ums::rcs::RcsSettings {
        ue,
        fallback_secs: u.fallback_secs,
        window: u.rcs_window,
        content_server: format!("http://{}", peers.content),
        outbox: dir.join("outbox"),
    })
}
