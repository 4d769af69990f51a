//! `rcslab presence`: the presence server's resource lists and watcher rules, through the
//! running lab's admin API (`/lists/...`, `/presence/.../watchers`). A user is a user part of
//! the lab's domain (`alice`) or a whole URI.

use clap::Subcommand;
use hyper::Method;

use super::{load_config, running_admin, CliError, Common, Result};

#[derive(Subcommand)]
pub enum PresenceCmd {
    /// A user's resource lists (RFC 4662): one line per list, `NAME URI: MEMBER, ...`.
    Lists {
        /// The owner (`alice` or `sip:alice@ims.lab`).
        user: String,
    },
    /// Writes a user's list NAME with these members (none: empties it); its subscribers get
    /// a partial NOTIFY.
    List {
        /// The owner.
        user: String,
        /// The list's name (`rcs` is the one every buddy-group member has).
        name: String,
        /// The members (`bob` or `sip:bob@ims.lab`, `tel:+1555...`).
        members: Vec<String>,
    },
    /// Who may watch a user (allow, block) and who waits (pending).
    Watchers {
        /// The presentity.
        user: String,
    },
    /// Lets watchers see a user's presence (a pending one gets it at once).
    Allow {
        /// The presentity.
        user: String,
        /// The watchers.
        #[arg(required = true)]
        watchers: Vec<String>,
    },
    /// Refuses watchers (their subscriptions end `rejected`).
    Block {
        /// The presentity.
        user: String,
        /// The watchers.
        #[arg(required = true)]
        watchers: Vec<String>,
    },
}

fn enc(s: &str) -> String {
    rcslab::hss::admin::percent_encode(s)
}

/// Runs one `rcslab presence` subcommand against the lab of `common.data_dir`.
pub async fn run(cmd: PresenceCmd, common: Common) -> Result<()> {
    let domain = load_config(&common)?.lab.domain;
    let uri = |u: &str| {
        if u.contains(':') {
            u.to_string()
        } else {
            format!("sip:{u}@{domain}")
        }
    };
    let api = running_admin(&common.data_dir)
        .await
        .ok_or_else(|| CliError::NoLab(common.data_dir.clone()))?;
    let call = |method: Method, path: String, body: Option<serde_json::Value>| {
        let api = api.clone();
        async move {
            let (status, text) = api.call(method, &path, body.map(|b| b.to_string())).await?;
            match status {
                200 => serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| CliError::Unexpected(e.to_string())),
                400 => Err(CliError::Refused(
                    serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["detail"].as_str().map(str::to_string))
                        .unwrap_or(text),
                )),
                _ => Err(CliError::Answered { status, body: text }),
            }
        }
    };
    let print_list = |name: &str, v: &serde_json::Value, owner: &str| {
        let members: Vec<&str> = v
            .as_array()
            .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
            .unwrap_or_default();
        let list = rcslab::presence::rls::list_uri(owner, name).unwrap_or_default();
        println!("{name} {list}: {}", members.join(", "));
    };
    match cmd {
        PresenceCmd::Lists { user } => {
            let owner = uri(&user);
            let v = call(Method::GET, format!("/lists/{}", enc(&owner)), None).await?;
            if let Some(lists) = v["lists"].as_object() {
                for (name, members) in lists {
                    print_list(name, members, &owner);
                }
            }
        }
        PresenceCmd::List {
            user,
            name,
            members,
        } => {
            let owner = uri(&user);
            let members: Vec<String> = members.iter().map(|m| uri(m)).collect();
            let v = call(
                Method::PUT,
                format!("/lists/{}/{}", enc(&owner), enc(&name)),
                Some(serde_json::json!({ "members": members })),
            )
            .await?;
            print_list(&name, &v["members"], &owner);
        }
        PresenceCmd::Watchers { user } => {
            let who = uri(&user);
            let v = call(
                Method::GET,
                format!("/presence/{}/watchers", enc(&who)),
                None,
            )
            .await?;
            print_rules(&v);
        }
        PresenceCmd::Allow { user, watchers } => {
            let v = edit_rules(&uri(&user), &watchers, true, &uri, &call).await?;
            print_rules(&v);
        }
        PresenceCmd::Block { user, watchers } => {
            let v = edit_rules(&uri(&user), &watchers, false, &uri, &call).await?;
            print_rules(&v);
        }
    }
    Ok(())
}

/// Reads `who`'s rule, moves `watchers` to its allow list (`allow`) or block list, writes it.
async fn edit_rules<F, Fut>(
    who: &str,
    watchers: &[String],
    allow: bool,
    uri: &dyn Fn(&str) -> String,
    call: &F,
) -> Result<serde_json::Value>
where
    F: Fn(Method, String, Option<serde_json::Value>) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value>>,
{
    let path = format!("/presence/{}/watchers", enc(who));
    let now = call(Method::GET, path.clone(), None).await?;
    let list = |k: &str| -> Vec<String> {
        now[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (mut allowed, mut blocked) = (list("allow"), list("block"));
    for w in watchers.iter().map(|w| uri(w)) {
        allowed.retain(|x| *x != w);
        blocked.retain(|x| *x != w);
        if allow {
            allowed.push(w);
        } else {
            blocked.push(w);
        }
    }
    call(
        Method::PUT,
        path,
        Some(serde_json::json!({ "allow": allowed, "block": blocked })),
    )
    .await
}

/// `allow: ...`, `block: ...`, `pending: ...`, one line each.
fn print_rules(v: &serde_json::Value) {
    for k in ["allow", "block", "pending"] {
        let who: Vec<&str> = v[k]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
            .unwrap_or_default();
        println!("{k}: {}", who.join(", "));
    }
}
