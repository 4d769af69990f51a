//! `[presence]`: the presence server PS (3GPP TS 24.141, RFC 3856): the bounds of its
//! publications (RFC 3903) and subscriptions (RFC 6665), and who may watch whom (RFC 3856
//! §6.6, the lab's stand-in for XCAP presence rules).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[presence]`
///
/// ```toml
/// [presence]
/// # Each group: identities that may all watch one another. Anyone else is pending.
/// buddy_groups = [["sip:alice@ims.lab", "sip:bob@ims.lab", "sip:carol@ims.lab"]]
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSection {
    /// The least Expires of a PUBLISH or SUBSCRIBE other than 0 (shorter: 423 with
    /// Min-Expires, RFC 3903 §6, RFC 6665 §4.2.1.1).
    #[serde(default = "default_min_expires")]
    pub min_expires: u32,
    /// Longer Expires are cut to this.
    #[serde(default = "default_max_expires")]
    pub max_expires: u32,
    /// Presentities the PS holds at most (more PUBLISHes of new ones get 503).
    #[serde(default = "default_max_presentities")]
    pub max_presentities: usize,
    /// Subscriptions the PS holds at most (more SUBSCRIBEs get 503).
    #[serde(default = "default_max_subscriptions")]
    pub max_subscriptions: usize,
    /// Watcher authorization: each group lists identities (canonical AORs, as the P-CSCF
    /// asserts them) that may watch one another's presence. A watcher in no group with the
    /// presentity gets `Subscription-State: pending` and no document (RFC 3856 §6.6.2).
    #[serde(default)]
    pub buddy_groups: Vec<Vec<String>>,
    /// Largest PIDF document a PUBLISH may carry, in bytes (larger: 413).
    #[serde(default = "default_max_document_bytes")]
    pub max_document_bytes: usize,
    /// Most members in one resource list (RFC 4662).
    #[serde(default = "default_max_list_members")]
    pub max_list_members: usize,
    /// Most resource lists the RLS holds (each user's default `rcs` list counts).
    #[serde(default = "default_max_lists")]
    pub max_lists: usize,
    /// Resource lists besides each buddy-group member's default `rcs` list (the group's other
    /// members); one here with the same owner and name replaces that default. A list written
    /// through the admin API replaces both, and is kept in the store.
    #[serde(default)]
    pub lists: Vec<ListConfig>,
}

/// `[[presence.lists]]`: one resource list, subscribed to as `sip:USER;pres-list=NAME@DOMAIN`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// The owner, the only one who may subscribe to it (`sip:alice@ims.lab`).
    pub owner: String,
    /// The list's name (`rcs`, the GSMA RCS buddy list, unless given).
    #[serde(default = "default_list_name")]
    pub name: String,
    /// The members (`sip:` or `tel:` URIs).
    pub members: Vec<String>,
}

fn default_max_document_bytes() -> usize {
    64 * 1024
}
fn default_list_name() -> String {
    "rcs".into()
}
fn default_max_list_members() -> usize {
    200
}
fn default_max_lists() -> usize {
    10_000
}

/// Identities in all `buddy_groups` at most (the rules are held in memory for each).
pub const MAX_BUDDY_ENTRIES: usize = 10_000;

impl Default for PresenceSection {
    fn default() -> Self {
        PresenceSection {
            min_expires: default_min_expires(),
            max_expires: default_max_expires(),
            max_presentities: default_max_presentities(),
            max_subscriptions: default_max_subscriptions(),
            buddy_groups: Vec::new(),
            max_document_bytes: default_max_document_bytes(),
            max_list_members: default_max_list_members(),
            max_lists: default_max_lists(),
            lists: Vec::new(),
        }
    }
}

impl PresenceSection {
    /// Refuses bounds that cannot work and oversized buddy lists.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.min_expires == 0 || self.max_expires < self.min_expires {
            return Err(ConfigError::Invalid(
                "[presence] needs 0 < min_expires <= max_expires".into(),
            ));
        }
        if self.max_presentities == 0 || self.max_subscriptions == 0 {
            return Err(ConfigError::Invalid(
                "[presence] max_presentities and max_subscriptions must be above 0".into(),
            ));
        }
        if self.max_document_bytes < 256 {
            return Err(ConfigError::Invalid(
                "[presence] max_document_bytes must be at least 256".into(),
            ));
        }
        if self.max_list_members == 0 || self.max_lists == 0 {
            return Err(ConfigError::Invalid(
                "[presence] max_list_members and max_lists must be above 0".into(),
            ));
        }
        if let Some(l) = self
            .lists
            .iter()
            .find(|l| l.members.len() > self.max_list_members)
        {
            return Err(ConfigError::Invalid(format!(
                "[presence] list {} of {} has {} members; max_list_members is {}",
                l.name,
                l.owner,
                l.members.len(),
                self.max_list_members
            )));
        }
        let n: usize = self.buddy_groups.iter().map(Vec::len).sum::<usize>()
            + self.lists.iter().map(|l| l.members.len()).sum::<usize>();
        if n > MAX_BUDDY_ENTRIES {
            return Err(ConfigError::Invalid(format!(
                "[presence] buddy_groups lists {n} identities; at most {MAX_BUDDY_ENTRIES}"
            )));
        }
        Ok(())
    }

    /// The lists the RLS starts with, `(owner, name, members)`: each buddy-group member's
    /// `rcs` list of the others, then `lists` (which replace a default of the same name).
    pub fn initial_lists(&self) -> Vec<(String, String, Vec<String>)> {
        let mut v: Vec<(String, String, Vec<String>)> = self
            .allowed_watchers()
            .into_iter()
            .map(|(owner, others)| (owner, default_list_name(), others))
            .collect();
        for l in &self.lists {
            v.retain(|(o, n, _)| !(o == &l.owner && n == &l.name));
            v.push((l.owner.clone(), l.name.clone(), l.members.clone()));
        }
        v
    }

    /// Every (presentity, watcher) pair the buddy groups allow, a presentity's watchers
    /// together: `(presentity, [watchers])`.
    pub fn allowed_watchers(&self) -> Vec<(String, Vec<String>)> {
        let mut by: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
            Default::default();
        for g in &self.buddy_groups {
            for p in g {
                let set = by.entry(p.as_str()).or_default();
                set.extend(g.iter().map(String::as_str).filter(|w| *w != p));
            }
        }
        by.into_iter()
            .map(|(p, w)| (p.to_string(), w.into_iter().map(str::to_string).collect()))
            .collect()
    }
}

fn default_min_expires() -> u32 {
    60
}
fn default_max_expires() -> u32 {
    86_400
}
fn default_max_presentities() -> usize {
    10_000
}
fn default_max_subscriptions() -> usize {
    10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_allows_each_member_to_watch_the_others() {
        let p = PresenceSection {
            buddy_groups: vec![
                vec!["sip:a@x".into(), "sip:b@x".into(), "sip:c@x".into()],
                vec!["sip:a@x".into(), "sip:d@x".into()],
            ],
            ..Default::default()
        };
        let w = p.allowed_watchers();
        assert_eq!(
            w[0],
            (
                "sip:a@x".to_string(),
                vec!["sip:b@x".into(), "sip:c@x".into(), "sip:d@x".into()]
            )
        );
        assert_eq!(
            w.iter().find(|(k, _)| k == "sip:d@x").unwrap().1,
            vec!["sip:a@x".to_string()]
        );
        assert!(p.check().is_ok());
        let bad = PresenceSection {
            min_expires: 0,
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }
}
