//! Members who are away (offline when they were invited, or their session ended): CONF
//! learns that a user registered from the third-party REGISTER its iFC asks the S-CSCF for
//! (TS 24.229 §5.4.1.7, §5.7.1.1), as T-IM does, and INVITEs the user back into each group it
//! is away from; once its leg binds, what it missed goes out in order ([`super::relay`]).

use std::sync::Arc;
use std::time::Duration;

use crate::sip::{IncomingRequest, NameAddr};

use super::group::MemberState;
use super::{lock, Focus};

/// Tries per group when a user comes back: the S-CSCF may tell us before the REGISTER's
/// 200 reached the P-CSCF, so the first INVITE can get 480.
const TRIES: u32 = 4;
/// Between tries.
const RETRY: Duration = Duration::from_secs(1);

impl Focus {
    /// A third-party REGISTER: 200, and the user back into the groups it is away from.
    pub(super) fn third_party_register(self: &Arc<Self>, inc: IncomingRequest) {
        let req = &inc.request;
        let user = req
            .headers
            .get("To")
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|na| na.uri.aor());
        let expires: u64 = req
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(3600);
        let mut ok = req.response(200, None);
        ok.ensure_to_tag();
        ok.headers.push("Expires", expires.to_string());
        inc.tx.respond(ok);
        let Some(user) = user.filter(|_| expires > 0) else {
            return;
        };
        let away: Vec<(String, String)> = lock(&self.groups)
            .values()
            .filter_map(|g| {
                let m = g.member(&user)?;
                let chairman = g.members.iter().find(|m| m.chairman)?.uri.clone();
                (m.state == MemberState::Away).then(|| (g.id.clone(), chairman))
            })
            .collect();
        for (gid, chairman) in away {
            let key = format!("{gid}\0{user}");
            if !lock(&self.returning).insert(key.clone()) {
                continue;
            }
            let me = self.clone();
            let user = user.clone();
            tokio::spawn(async move {
                for i in 0..TRIES {
                    if i > 0 {
                        tokio::time::sleep(RETRY).await;
                    }
                    if me.invite_member(&gid, &user, &chairman).await != MemberState::Away {
                        break;
                    }
                }
                lock(&me.returning).remove(&key);
            });
        }
    }
}
