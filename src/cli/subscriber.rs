//! `rcslab subscriber`: the HSS's subscribers, through a running lab's admin API or, with no
//! lab running, straight in the data dir's store.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use hyper::Method;

use rcslab::config::{IfcConfig, SubscriberConfig};
use rcslab::hss::admin;
use rcslab::hss::admin_client::AdminClient;
use rcslab::store::Store;

use super::{load_config, running_admin, CliError, Common, Result};

#[derive(Subcommand)]
pub enum SubCmd {
    /// Add (or replace) a subscriber: `rcslab subscriber add sip:u1@ims.lab --password pw1`.
    Add {
        /// Default public identity (sip: URI).
        impu: String,
        /// Digest password.
        #[arg(long)]
        password: String,
        /// Private identity (default: user@domain of the IMPU).
        #[arg(long)]
        impi: Option<String>,
        /// More public identities, e.g. tel:+15550100 (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// AKA key K (32 hex digits; random when absent).
        #[arg(long)]
        k: Option<String>,
        /// AKA OPc (32 hex digits; random when absent).
        #[arg(long)]
        opc: Option<String>,
        /// AKA AMF (4 hex digits).
        #[arg(long, default_value = "8000")]
        amf: String,
        /// Initial SQN.
        #[arg(long, default_value_t = 32)]
        sqn: u64,
    },
    /// Add many subscribers from a file of `impu;password` lines (sipp injection style).
    Import {
        /// The file (`-` for standard input).
        file: PathBuf,
    },
    /// List all subscribers.
    List,
    /// Show one subscriber (by IMPI or IMPU).
    Show {
        /// IMPI or IMPU.
        id: String,
    },
    /// Remove a subscriber (by IMPI or IMPU). A running lab de-registers it with RTR.
    Remove {
        /// IMPI or IMPU.
        id: String,
    },
    /// Show or replace a subscriber's initial filter criteria. A running lab pushes the new
    /// profile to the serving S-CSCF with PPR.
    Ifc {
        /// IMPI or IMPU.
        id: String,
        /// A TOML file of `[[ifc]]` entries (same keys as the lab file's `[[default_ifc]]`).
        #[arg(long, conflicts_with = "clear")]
        set: Option<PathBuf>,
        /// Remove every iFC.
        #[arg(long)]
        clear: bool,
    },
}

/// `--set FILE`: the `[[ifc]]` list of a TOML file. What `subscriber show` prints is accepted
/// as it is: its identity keys are read and left alone (identities and secrets change with
/// `subscriber add`); any other key is an error.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct IfcFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    impi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    impus: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_set: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aka: Option<admin::AkaView>,
    #[serde(default)]
    ifc: Vec<IfcConfig>,
}

/// `subscriber ifc ID`: the iFCs as the `[[ifc]]` entries `--set` takes.
fn ifc_toml(ifcs: &[rcslab::profile::InitialFilterCriteria]) -> Result<String> {
    let file = IfcFile {
        impi: None,
        impus: None,
        password_set: None,
        aka: None,
        ifc: ifcs.iter().map(IfcConfig::from_profile).collect(),
    };
    let body = toml::to_string(&file)?;
    Ok(if file.ifc.is_empty() {
        "# no iFC (the S-CSCF routes this user's requests without application servers)\n".into()
    } else {
        body
    })
}

/// `subscriber show ID`: TOML that `subscriber ifc ID --set` takes back (secrets are
/// write-only: only whether they are set).
fn show_toml(v: &admin::SubscriberView) -> Result<String> {
    let file = IfcFile {
        impi: Some(v.impi.clone()),
        impus: Some(v.impus.clone()),
        password_set: Some(v.password_set),
        aka: Some(v.aka.clone()),
        ifc: v.ifcs.iter().map(IfcConfig::from_profile).collect(),
    };
    let body = toml::to_string(&file)?;
    Ok(format!(
        "# {} (passwords and SIM keys are write-only; `rcslab subscriber ifc {} --set FILE` takes this file back)\n{body}",
        v.impi, v.impi
    ))
}

/// `subscriber import`: one subscriber a line, either `IMPU;PASSWORD` or sipp's injection
/// form `USER;DOMAIN;[authentication username=IMPI password=PW]` (sipp's manual, "Injecting
/// values from an external CSV"); `SEQUENTIAL`, `RANDOM`, `USER` header lines, blank lines and
/// `#` comments are skipped. An error names the line and what it expected.
fn parse_import(text: &str) -> Result<Vec<SubscriberConfig>> {
    let mut v = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let upper = line.to_ascii_uppercase();
        if line.is_empty()
            || line.starts_with('#')
            || matches!(upper.as_str(), "SEQUENTIAL" | "RANDOM" | "USER")
            || upper.starts_with("PRINTF")
        {
            continue;
        }
        let bad = |why: &str| {
            CliError::Import(format!(
                "line {}: {why}: '{line}' (expected IMPU;PASSWORD or sipp's USER;DOMAIN;[authentication username=IMPI password=PW])",
                n + 1
            ))
        };
        let fields: Vec<&str> = line.split(';').map(str::trim).collect();
        let sub = match fields.as_slice() {
            [user, domain, auth, ..] if auth.starts_with("[authentication") => {
                let inner = auth
                    .strip_prefix("[authentication")
                    .and_then(|a| a.strip_suffix(']'))
                    .ok_or_else(|| bad("the [authentication ...] field is not closed"))?;
                let mut impi = None;
                let mut password = None;
                for kv in inner.split_whitespace() {
                    match kv.split_once('=') {
                        Some(("username", u)) => impi = Some(u.to_string()),
                        Some(("password", p)) => password = Some(p.to_string()),
                        _ => return Err(bad(&format!("unknown authentication item '{kv}'"))),
                    }
                }
                let password = password.ok_or_else(|| bad("no password= in [authentication]"))?;
                if user.is_empty() || domain.is_empty() || user.contains(['@', ':']) {
                    return Err(bad("USER and DOMAIN must be a plain user and domain"));
                }
                SubscriberConfig {
                    impi,
                    impu: vec![format!("sip:{user}@{domain}")],
                    password,
                    k: None,
                    opc: None,
                    amf: None,
                    sqn: None,
                    ifc: None,
                }
            }
            [impu, password] if !impu.is_empty() && !password.is_empty() => {
                let impu = if impu.contains(':') {
                    impu.to_string()
                } else if impu.contains('@') {
                    format!("sip:{impu}")
                } else {
                    return Err(bad("the IMPU needs a domain (sip:user@domain)"));
                };
                SubscriberConfig {
                    impi: None,
                    impu: vec![impu],
                    password: password.to_string(),
                    k: None,
                    opc: None,
                    amf: None,
                    sqn: None,
                    ifc: None,
                }
            }
            _ => return Err(bad("cannot read this line")),
        };
        rcslab::store::default_impi(&sub.impu[0]).map_err(|e| bad(&e.to_string()))?;
        v.push(sub);
    }
    if v.is_empty() {
        return Err(CliError::EmptyImport);
    }
    Ok(v)
}

/// The data dir's store, for a command that writes (created when missing).
fn open_store(data_dir: &Path) -> Result<Store> {
    std::fs::create_dir_all(data_dir).map_err(|source| CliError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    Ok(Store::open(data_dir)?)
}

/// The data dir's store, for a command that only reads: a missing data dir is an error, not
/// an empty database left behind.
fn read_store(data_dir: &Path) -> Result<Store> {
    if !data_dir.join("db").exists() {
        return Err(CliError::NoData(data_dir.to_path_buf()));
    }
    Ok(Store::open(data_dir)?)
}

pub async fn run(cmd: SubCmd, common: Common) -> Result<()> {
    let api = running_admin(&common.data_dir).await;
    let specs = match &cmd {
        SubCmd::Add {
            impu,
            password,
            impi,
            aliases,
            k,
            opc,
            amf,
            sqn,
        } => {
            let mut ids = vec![impu.clone()];
            ids.extend(aliases.iter().cloned());
            Some(vec![SubscriberConfig {
                impi: impi.clone(),
                impu: ids,
                password: password.clone(),
                k: k.clone(),
                opc: opc.clone(),
                amf: Some(amf.clone()),
                sqn: Some(*sqn),
                ifc: None,
            }])
        }
        SubCmd::Import { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(file).map_err(|e| CliError::File {
                    path: file.to_path_buf(),
                    detail: e.to_string(),
                })?
            };
            let v = parse_import(&text)?;
            Some(v)
        }
        _ => None,
    };
    if let Some(specs) = specs {
        let n = specs.len();
        if let Some(api) = &api {
            let body = serde_json::to_string(&specs)?;
            let (status, body) = api.call(Method::POST, "/subscribers", Some(body)).await?;
            if status != 201 {
                return Err(CliError::Refused(body));
            }
        } else {
            let store = open_store(&common.data_dir)?;
            let lab = load_config(&common)?;
            admin::add_subscribers(&store, &specs, &lab.default_ifc)?;
        }
        println!("added {n} subscriber{}", if n == 1 { "" } else { "s" });
        return Ok(());
    }
    let removing = matches!(cmd, SubCmd::Remove { .. });
    if let SubCmd::Ifc { id, set, clear } = &cmd {
        return subscriber_ifc(api.as_ref(), &common, id, set.as_deref(), *clear).await;
    }
    match cmd {
        SubCmd::List => {
            let subs = match &api {
                Some(api) => api.list_all().await?,
                None => read_store(&common.data_dir)?
                    .subscribers()?
                    .iter()
                    .map(admin::SubscriberView::from)
                    .collect(),
            };
            println!("{:<28} public identities", "private identity");
            for s in subs {
                println!("{:<28} {}", s.impi, s.impus.join(", "));
            }
            Ok(())
        }
        SubCmd::Show { id } | SubCmd::Remove { id } if api.is_some() => {
            let Some(api) = api else {
                unreachable!("the arm is guarded by api.is_some()")
            };
            let method = if removing {
                Method::DELETE
            } else {
                Method::GET
            };
            let path = format!("/subscribers/{}", admin::percent_encode(&id));
            let (status, body) = api.call(method, &path, None).await?;
            match (status, removing) {
                (200, false) => {
                    let view: admin::SubscriberView = serde_json::from_str(&body)?;
                    print!("{}", show_toml(&view)?);
                    Ok(())
                }
                (200, true) => {
                    println!("removed {id}");
                    Ok(())
                }
                (404, _) => Err(CliError::NoSubscriber(id.to_string())),
                _ => Err(CliError::Answered { status, body }),
            }
        }
        SubCmd::Show { id } => {
            let s = read_store(&common.data_dir)?.find(&id)?;
            match s {
                Some(s) => {
                    let view = admin::SubscriberView::from(&s);
                    print!("{}", show_toml(&view)?);
                    Ok(())
                }
                None => Err(CliError::NoSubscriber(id.to_string())),
            }
        }
        SubCmd::Remove { id } => {
            let st = read_store(&common.data_dir)?;
            let s = st.remove(&id)?;
            st.flush()?;
            match s {
                Some(s) => {
                    println!("removed {}", s.impi);
                    Ok(())
                }
                None => Err(CliError::NoSubscriber(id.to_string())),
            }
        }
        SubCmd::Add { .. } | SubCmd::Import { .. } | SubCmd::Ifc { .. } => Ok(()),
    }
}

async fn subscriber_ifc(
    api: Option<&AdminClient>,
    common: &Common,
    id: &str,
    set: Option<&Path>,
    clear: bool,
) -> Result<()> {
    let new_ifc: Option<Vec<rcslab::config::IfcConfig>> = match (set, clear) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f).map_err(|e| CliError::File {
                path: f.to_path_buf(),
                detail: e.to_string(),
            })?;
            let parsed: IfcFile = toml::from_str(&text).map_err(|e| CliError::File {
                path: f.to_path_buf(),
                detail: e.to_string(),
            })?;
            for i in &parsed.ifc {
                i.to_profile()?;
            }
            Some(parsed.ifc)
        }
        (None, true) => Some(Vec::new()),
        (None, false) => None,
    };
    let path = format!("/subscribers/{}", admin::percent_encode(id));
    let Some(new_ifc) = new_ifc else {
        // Show the iFCs as they are now.
        let ifcs = match api {
            Some(api) => {
                let (status, body) = api.call(Method::GET, &path, None).await?;
                if status != 200 {
                    return Err(CliError::NoSubscriber(id.to_string()));
                }
                serde_json::from_str::<admin::SubscriberView>(&body)?.ifcs
            }
            None => read_store(&common.data_dir)?
                .find(id)?
                .ok_or_else(|| CliError::NoSubscriber(id.to_string()))?
                .ifcs
                .clone(),
        };
        print!("{}", ifc_toml(&ifcs)?);
        return Ok(());
    };
    let n = new_ifc.len();
    let impi = match api {
        Some(api) => {
            let body = serde_json::to_string(&new_ifc)?;
            let (status, body) = api
                .call(Method::PUT, &format!("{path}/ifc"), Some(body))
                .await?;
            match status {
                200 => serde_json::from_str::<admin::SubscriberView>(&body)?.impi,
                404 => return Err(CliError::NoSubscriber(id.to_string())),
                _ => return Err(CliError::Refused(body)),
            }
        }
        None => {
            let store = read_store(&common.data_dir)?;
            let mut sub = store
                .find(id)?
                .ok_or_else(|| CliError::NoSubscriber(id.to_string()))?;
            sub.ifcs = new_ifc
                .iter()
                .map(|i| i.to_profile())
                .collect::<Result<Vec<_>, _>>()?;
            store.put_subscriber(&sub)?;
            store.flush()?;
            sub.impi
        }
    };
    println!("{impi}: {n} iFC");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_takes_readmes_sipp_file_and_impu_password_lines() {
        let v = parse_import(
            "SEQUENTIAL\nalice;ims.lab;[authentication username=alice@ims.lab password=alice-secret]\n# c\n\nsip:u1@ims.lab;pw1\nu2@ims.lab;pw2\n",
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].impu, vec!["sip:alice@ims.lab".to_string()]);
        assert_eq!(v[0].impi.as_deref(), Some("alice@ims.lab"));
        assert_eq!(v[0].password, "alice-secret");
        assert_eq!(v[1].impu, vec!["sip:u1@ims.lab".to_string()]);
        assert_eq!(v[2].impu, vec!["sip:u2@ims.lab".to_string()]);
        let e = parse_import("SEQUENTIAL\nalice;ims.lab;[authentication username=a pass=x]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 2: unknown authentication item 'pass=x'"),
            "{e}"
        );
        let e = parse_import("sip:a@ims.lab;pw\njustone\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2: cannot read this line"), "{e}");
        let e = parse_import("SEQUENTIAL\n").unwrap_err();
        assert_eq!(e.to_string(), "no subscriber in the file");
    }

    #[test]
    fn show_and_ifc_print_toml_that_set_takes_back() {
        let lab = rcslab::config::LabConfig::default_lab();
        let ifcs: Vec<_> = lab
            .default_ifc
            .iter()
            .map(|i| i.to_profile().unwrap())
            .collect();
        let view = admin::SubscriberView {
            impi: "alice@ims.lab".into(),
            impus: vec!["sip:alice@ims.lab".into(), "tel:+15550001".into()],
            password_set: true,
            aka: admin::AkaView {
                k_set: true,
                opc_set: true,
                amf: "8000".into(),
                sqn: 33,
            },
            ifcs: ifcs.clone(),
        };
        for text in [show_toml(&view).unwrap(), ifc_toml(&ifcs).unwrap()] {
            assert!(!text.contains("SessionCase"), "{text}");
            let back: IfcFile = toml::from_str(&text).unwrap();
            let got: Vec<_> = back.ifc.iter().map(|i| i.to_profile().unwrap()).collect();
            assert_eq!(got, ifcs, "{text}");
        }
        let shown = show_toml(&view).unwrap();
        assert!(shown.contains("impi = \"alice@ims.lab\""), "{shown}");
        assert!(shown.contains("[[ifc]]"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(toml::from_str::<IfcFile>("impi = \"a\"\nbogus = 1\n").is_err());
    }
}
