//! The teaching labs compiled into the binary (`labs/NN-*.toml`), so `rcslab lab list`,
//! `lab run 06` and `lab check` work from any directory; a directory argument overrides them.
//! A unit test keeps this list equal to the directory.

use std::path::Path;

use crate::lab::scenario::{Scenario, ScenarioError};

/// Every lab: file name and text.
pub const LABS: &[(&str, &str)] = &[
    (
        "01-registration-digest.toml",
        include_str!("../../labs/01-registration-digest.toml"),
    ),
    (
        "02-registration-aka-sync-failure.toml",
        include_str!("../../labs/02-registration-aka-sync-failure.toml"),
    ),
    (
        "03-pager-message.toml",
        include_str!("../../labs/03-pager-message.toml"),
    ),
    (
        "04-voice-call.toml",
        include_str!("../../labs/04-voice-call.toml"),
    ),
    (
        "05-rtr-and-ppr.toml",
        include_str!("../../labs/05-rtr-and-ppr.toml"),
    ),
    (
        "06-rcs-chat-first-message.toml",
        include_str!("../../labs/06-rcs-chat-first-message.toml"),
    ),
    (
        "07-rcs-chat-later-message.toml",
        include_str!("../../labs/07-rcs-chat-later-message.toml"),
    ),
    (
        "08-webrsf-first-message.toml",
        include_str!("../../labs/08-webrsf-first-message.toml"),
    ),
    (
        "09-webrsf-later-message.toml",
        include_str!("../../labs/09-webrsf-later-message.toml"),
    ),
    (
        "10-capability-discovery.toml",
        include_str!("../../labs/10-capability-discovery.toml"),
    ),
    (
        "11-presence.toml",
        include_str!("../../labs/11-presence.toml"),
    ),
    (
        "12-resource-list.toml",
        include_str!("../../labs/12-resource-list.toml"),
    ),
    (
        "13-rtcweb-call.toml",
        include_str!("../../labs/13-rtcweb-call.toml"),
    ),
    (
        "14-rtcweb-presence.toml",
        include_str!("../../labs/14-rtcweb-presence.toml"),
    ),
    (
        "15-jssip-registration.toml",
        include_str!("../../labs/15-jssip-registration.toml"),
    ),
    (
        "16-rtcweb-media-bridge.toml",
        include_str!("../../labs/16-rtcweb-media-bridge.toml"),
    ),
    (
        "17-group-chat-create.toml",
        include_str!("../../labs/17-group-chat-create.toml"),
    ),
    (
        "18-group-chat-members.toml",
        include_str!("../../labs/18-group-chat-members.toml"),
    ),
    (
        "19-group-chat-rejoin.toml",
        include_str!("../../labs/19-group-chat-rejoin.toml"),
    ),
    (
        "20-file-transfer-http.toml",
        include_str!("../../labs/20-file-transfer-http.toml"),
    ),
    (
        "21-file-transfer-msrp.toml",
        include_str!("../../labs/21-file-transfer-msrp.toml"),
    ),
    (
        "22-mo-sms-over-ip.toml",
        include_str!("../../labs/22-mo-sms-over-ip.toml"),
    ),
    (
        "23-mt-sms-phone-away.toml",
        include_str!("../../labs/23-mt-sms-phone-away.toml"),
    ),
    (
        "24-smpp-application-sms.toml",
        include_str!("../../labs/24-smpp-application-sms.toml"),
    ),
    (
        "25-ums-rcs-fallback-to-sms.toml",
        include_str!("../../labs/25-ums-rcs-fallback-to-sms.toml"),
    ),
    (
        "26-ums-bulk-template.toml",
        include_str!("../../labs/26-ums-bulk-template.toml"),
    ),
];

/// The compiled-in labs, parsed, in order.
pub fn compiled_in() -> Result<Vec<(String, Scenario)>, ScenarioError> {
    LABS.iter()
        .map(|(name, text)| Ok((name.to_string(), Scenario::parse(text, name)?)))
        .collect()
}

/// The lab files of a directory (`*.toml` files with a `title`), sorted by name.
pub fn from_dir(dir: &Path) -> Result<Vec<(String, Scenario)>, ScenarioError> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ScenarioError::Invalid(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .filter_map(|p| {
            Scenario::load(&p)
                .ok()
                .map(|s| (p.display().to_string(), s))
        })
        .collect())
}

/// A lab by name: a file that exists, else a compiled-in lab named in full
/// (`06-rcs-chat-first-message`, with or without `.toml`) or by its number (`06`, `6`).
pub fn find(name: &str) -> Result<(String, Scenario), ScenarioError> {
    let p = Path::new(name);
    if p.is_file() {
        return Ok((name.to_string(), Scenario::load(p)?));
    }
    let stem = name.trim_end_matches(".toml");
    let stem = stem.rsplit('/').next().unwrap_or(stem);
    let number = stem.parse::<u32>().ok().map(|n| format!("{n:02}-"));
    let hit = LABS.iter().find(|(file, _)| {
        file.trim_end_matches(".toml") == stem
            || number.as_deref().is_some_and(|n| file.starts_with(n))
    });
    match hit {
        Some((file, text)) => Ok((file.to_string(), Scenario::parse(text, file)?)),
        None => Err(ScenarioError::Invalid(format!(
            "no lab '{name}': give a lab file, or one of {}",
            LABS.iter()
                .map(|(f, _)| f.trim_end_matches(".toml"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_labs_are_the_labs_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
        let on_disk: Vec<String> = from_dir(&dir)
            .unwrap()
            .into_iter()
            .map(|(p, _)| {
                Path::new(&p)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_string()
            })
            .collect();
        let built: Vec<&str> = LABS.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            on_disk, built,
            "add the new lab to LABS in src/lab/catalog.rs"
        );
        for (f, text) in LABS {
            let disk = std::fs::read_to_string(dir.join(f)).unwrap();
            assert_eq!(&disk, text, "{f}");
        }
        for (f, s) in compiled_in().unwrap() {
            assert!(
                s.figure_steps.is_empty() || s.figure_steps.len() == s.expected.len(),
                "{f}: figure_steps has one number per expected line"
            );
            // "The 26 steps of ...", "(12 steps)": the numbers count what `teaches` promises.
            if let Some(i) = s.teaches.find(" steps") {
                let digits: String = s.teaches[..i]
                    .chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let promised: usize = digits.parse().unwrap();
                let steps: std::collections::BTreeSet<u32> =
                    s.figure_steps.iter().copied().filter(|n| *n > 0).collect();
                assert_eq!(steps.len(), promised, "{f}: figure steps");
                assert_eq!(
                    steps.iter().max().copied(),
                    Some(promised as u32),
                    "{f}: numbered 1..{promised}"
                );
            }
        }
    }

    #[test]
    fn labs_are_found_by_number_or_name() {
        assert_eq!(find("06").unwrap().0, "06-rcs-chat-first-message.toml");
        assert_eq!(find("6").unwrap().0, "06-rcs-chat-first-message.toml");
        assert_eq!(
            find("06-rcs-chat-first-message").unwrap().0,
            "06-rcs-chat-first-message.toml"
        );
        assert_eq!(
            find("labs/01-registration-digest.toml").unwrap().1.title,
            find("01").unwrap().1.title
        );
        let e = find("99").unwrap_err().to_string();
        assert!(e.contains("01-registration-digest"), "{e}");
    }
}
