//! `[group]`: group chat at the conference focus CONF (OMA SIMPLE IM 1.0 §7, GSMA RCC.07 §3.4,
//! RFC 4579): how large a group may grow, the conference factory's name, the largest message.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[group]`
///
/// ```toml
/// [group]
/// max_members = 100
/// factory = "chat-factory"
/// max_message_size = 1048576
/// idle_timeout = 600
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    /// Members a group may have, its creator included (GSMA RCC.07's default 100); an INVITE
    /// to the factory or a REFER that would pass it is refused. 2 to [`MAX_GROUP_MEMBERS`].
    #[serde(default = "default_max_members")]
    pub max_members: usize,
    /// The conference factory's user part: a group is created by an INVITE to
    /// `sip:FACTORY@DOMAIN` (RFC 4579 §5.4). The default iFC sends `sip:chat-…` Request-URIs
    /// to CONF, so a factory not starting with `chat-` needs its own iFC.
    #[serde(default = "default_factory")]
    pub factory: String,
    /// The largest message CONF relays to a group over MSRP, in bytes (larger: 413).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: u64,
    /// Seconds a group may carry no message before CONF ends its members' sessions (each a
    /// BYE; they stay members, away, and a member's next message restarts the group: RCC.07
    /// §3.4.4.1.7). 0 never ends them.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
}

/// The most members `max_members` may allow.
pub const MAX_GROUP_MEMBERS: usize = 10_000;

impl Default for GroupSection {
    fn default() -> Self {
        GroupSection {
            max_members: default_max_members(),
            factory: default_factory(),
            max_message_size: default_max_message_size(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

impl GroupSection {
    /// Refuses a group that cannot hold two members, a factory that is no SIP user part and
    /// an empty message cap.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !(2..=MAX_GROUP_MEMBERS).contains(&self.max_members) {
            return Err(ConfigError::Invalid(format!(
                "[group] max_members is {}; it counts the creator too, so it must be 2 to {MAX_GROUP_MEMBERS}",
                self.max_members
            )));
        }
        if !is_user_part(&self.factory) {
            return Err(ConfigError::Invalid(format!(
                "[group] factory {:?} is not a SIP user part (RFC 3261 §25.1: letters, digits and -_.!~*'()&=+$,;?/%, not empty)",
                self.factory
            )));
        }
        if self.max_message_size == 0 {
            return Err(ConfigError::Invalid(
                "[group] max_message_size must be above 0".into(),
            ));
        }
        Ok(())
    }
}

/// True for a non-empty `user` of RFC 3261 §25.1: unreserved, user-unreserved and escaped
/// (`%HH`) characters.
fn is_user_part(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |k: usize| b.get(k).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&c)) {
            return false;
        }
        i += 1;
    }
    !b.is_empty()
}

fn default_max_members() -> usize {
    100
}
fn default_factory() -> String {
    "chat-factory".into()
}
fn default_max_message_size() -> u64 {
    1 << 20
}

fn default_idle_timeout() -> u64 {
    600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_the_factory_name_are_checked() {
        assert!(GroupSection::default().check().is_ok());
        for n in [0, 1, MAX_GROUP_MEMBERS + 1] {
            let e = GroupSection {
                max_members: n,
                ..Default::default()
            }
            .check()
            .unwrap_err()
            .to_string();
            assert!(e.contains("max_members") && e.contains("2 to 10000"), "{e}");
        }
        assert!(GroupSection {
            max_members: 2,
            ..Default::default()
        }
        .check()
        .is_ok());
        for bad in [
            "",
            "chat factory",
            "chat@ims.lab",
            "sip:chat",
            "a%2",
            "a%zz",
        ] {
            let e = GroupSection {
                factory: bad.into(),
                ..Default::default()
            }
            .check()
            .unwrap_err()
            .to_string();
            assert!(e.contains("factory"), "{bad}: {e}");
        }
        for good in ["chat-factory", "conf%2Dx", "a.b_c~"] {
            assert!(is_user_part(good), "{good}");
        }
        assert!(GroupSection {
            max_message_size: 0,
            ..Default::default()
        }
        .check()
        .is_err());
    }
}
