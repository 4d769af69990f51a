//! `rcslab ue ... watch`: publishes the user available (open), subscribes to users' presence
//! (RFC 3856), or to the user's own buddy list at the RLS (RFC 4662, `--list`), and prints
//! each change as a line
//! `USER: open away (note)`, `USER: closed (last seen TIME)` or `USER: pending` until Ctrl-C.
//! Registration is refreshed at half-life; a subscription the server ends when its time is up
//! (or to move it, RFC 6665 §4.1.3 `deactivated`, `probation`) is made anew.

use std::time::Duration;

use rcslab::sip::Method;
use rcslab::ue::presence::{answer_notify, notice_line, notices};
use rcslab::ue::Ue;

use super::{CliError, Result};

/// Seconds a watch subscription asks for.
const SUBSCRIPTION_SECS: u32 = 3600;

/// What the watch subscribes to.
#[derive(Clone)]
enum Watched {
    User(String),
    List(String),
}

async fn subscribe(ue: &mut Ue, w: &Watched) -> (String, u16, String) {
    let (req, resp) = match w {
        Watched::User(t) => ue.subscribe_presence(t, SUBSCRIPTION_SECS).await,
        Watched::List(n) => ue.subscribe_list(n, SUBSCRIPTION_SECS).await,
    };
    (req.uri, resp.status, resp.reason)
}

/// Runs the watch until Ctrl-C; an error when no subscription was accepted.
pub async fn watch(
    mut ue: Ue,
    reg_expires: u32,
    targets: &[String],
    list: Option<&str>,
) -> Result<()> {
    // Watching from a registered UE is being online too.
    super::ue::publish_online(&mut ue).await;
    let mut watched: Vec<Watched> = targets.iter().cloned().map(Watched::User).collect();
    if let Some(l) = list {
        watched.push(Watched::List(l.to_string()));
    }
    let mut subscribed = Vec::new();
    for w in &watched {
        let (uri, status, reason) = subscribe(&mut ue, w).await;
        if status / 100 == 2 {
            subscribed.push((uri, w.clone()));
        } else {
            eprintln!("rcslab ue: watch {uri}: {status} {reason}");
        }
    }
    if subscribed.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(5), ue.register(0)).await;
        return Err(CliError::Presence("watch: no subscription accepted".into()));
    }
    eprintln!("rcslab ue: {} watching (Ctrl-C stops)", ue.cfg.impu);
    // Re-register at half-life: a watch runs for hours.
    let mut refresh =
        tokio::time::interval(Duration::from_secs(u64::from(reg_expires.max(60)) / 2));
    refresh.tick().await;
    loop {
        tokio::select! {
            inc = ue.next_request(Duration::from_secs(3600)) => {
                let Some(inc) = inc else { continue };
                if inc.request.method == Method::Options {
                    let ok = ue.answer_options(&inc.request);
                    inc.tx.respond(ok);
                    continue;
                }
                match notices(&inc.request) {
                    Some(ns) => {
                        let again = resubscribe_for(&inc.request, &subscribed);
                        answer_notify(inc);
                        for n in ns {
                            println!("{}", notice_line(&n));
                        }
                        if let Some(w) = again {
                            let (uri, status, reason) = subscribe(&mut ue, &w).await;
                            if status / 100 != 2 {
                                eprintln!("rcslab ue: watch {uri} again: {status} {reason}");
                            }
                        }
                    }
                    None => {
                        let mut r = inc.request.response(405, None);
                        r.ensure_to_tag();
                        inc.tx.respond(r);
                    }
                }
            }
            _ = refresh.tick() => {
                let _ = tokio::time::timeout(Duration::from_secs(10), ue.register(reg_expires.max(60))).await;
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = tokio::time::timeout(Duration::from_secs(5), ue.register(0)).await;
                return Ok(());
            }
        }
    }
}

/// The subscription to make anew after this NOTIFY: when it ends one of ours for a reason
/// that invites a new one (RFC 6665 §4.1.3: `timeout`, `deactivated`, `probation`).
fn resubscribe_for(
    notify: &rcslab::sip::Request,
    subscribed: &[(String, Watched)],
) -> Option<Watched> {
    let state = notify
        .headers
        .get("Subscription-State")?
        .to_ascii_lowercase();
    if !state.starts_with("terminated")
        || !["timeout", "deactivated", "probation"]
            .iter()
            .any(|r| state.contains(&format!("reason={r}")))
    {
        return None;
    }
    let from = rcslab::sip::NameAddr::parse(notify.headers.get("From")?).ok()?;
    let aor = from.uri.aor();
    subscribed
        .iter()
        .find(|(uri, _)| rcslab::sip::Uri::parse(uri).is_ok_and(|u| u.aor() == aor))
        .map(|(_, w)| w.clone())
}
