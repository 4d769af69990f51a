//! Starting UMS, the unified-messaging gateway ([`crate::ums`]): its tokens under
//! `DIR/ums/` (made at the first start unless `[ums]` gives them), its trees in the store it
//! is handed, its API on a bound listener, its SMPP session to the SMS centre at `smsc`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::nodes::{token, Ctx};
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
