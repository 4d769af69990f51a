//! The ordered header lines of a SIP message (RFC 3261 §7.3): canonical names, compact forms
//! expanded (§7.3.3), lookup by either form, editing that keeps the order a proxy must keep
//! (§16.6, push-front for Via and Route), and serialisation with a Content-Length that is
//! always right (§18.3, §20.14).

use crate::sip::headers::split_list;

/// Expands compact header names (RFC 3261 §7.3.3 and extensions) and gives well-known names
/// their usual spelling.
pub(super) fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let long = match name.as_bytes()[0].to_ascii_lowercase() {
            b'i' => "Call-ID",
            b'm' => "Contact",
            b'e' => "Content-Encoding",
            b'l' => "Content-Length",
            b'c' => "Content-Type",
            b'f' => "From",
            b's' => "Subject",
            b'k' => "Supported",
            b't' => "To",
            b'v' => "Via",
            b'o' => "Event",
            b'u' => "Allow-Events",
            b'r' => "Refer-To",
            b'b' => "Referred-By",
            b'x' => "Session-Expires",
            b'a' => "Accept-Contact",
            b'j' => "Reject-Contact",
            b'd' => "Request-Disposition",
            b'y' => "Identity",
            b'n' => "Identity-Info",
            _ => return name.to_string(),
        };
        return long.to_string();
    }
    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Expires",
        "Route",
        "Record-Route",
        "Path",
        "Service-Route",
        "Content-Type",
        "Content-Length",
        "Authorization",
        "WWW-Authenticate",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Supported",
        "Require",
        "User-Agent",
        "Allow",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "P-Associated-URI",
        "P-Visited-Network-ID",
        "P-Charging-Vector",
        "P-Access-Network-Info",
        "Min-Expires",
        "Warning",
        "Reason",
        "Event",
        "Subject",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| k.to_string())
        .unwrap_or_else(|| name.to_string())
}

fn names_match(stored: &str, query: &str) -> bool {
    stored.eq_ignore_ascii_case(query)
        || (query.len() == 1 && stored.eq_ignore_ascii_case(&canonical_name(query)))
}

/// Ordered header lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    pub(super) entries: Vec<(String, String)>,
}

impl Headers {
    /// The first line's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| names_match(k, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every line's value, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| names_match(k, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated element across all lines of `name`.
    pub fn values<'a>(&'a self, name: &str) -> Vec<&'a str> {
        self.entries
            .iter()
            .filter(|(k, _)| names_match(k, name))
            .flat_map(|(_, v)| split_list(v))
            .collect()
    }

    /// The first comma-separated element of the first line of `name` — the top Via even when
    /// a peer (sipp's `[last_Via:]`) folds every Via into one line.
    pub fn first_value(&self, name: &str) -> Option<&str> {
        let line = self.get(name)?;
        split_list(line).into_iter().next()
    }

    /// True when at least one line exists.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a line.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.entries.push((canonical_name(name), value.into()));
    }

    /// Inserts a line before the first line of the same name, or at the top.
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        let at = self
            .entries
            .iter()
            .position(|(k, _)| names_match(k, name))
            .unwrap_or(0);
        self.entries
            .insert(at, (canonical_name(name), value.into()));
    }

    /// Removes the first element of the first line of `name` (the line goes when empty).
    pub fn pop_first_value(&mut self, name: &str) -> Option<String> {
        let idx = self
            .entries
            .iter()
            .position(|(k, _)| names_match(k, name))?;
        let value = self.entries[idx].1.clone();
        let parts = split_list(&value);
        let first = parts.first().map(|s| s.to_string());
        if parts.len() <= 1 {
            self.entries.remove(idx);
        } else {
            self.entries[idx].1 = parts[1..].join(", ");
        }
        first
    }

    /// Removes all lines of `name`.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| !names_match(k, name));
        before - self.entries.len()
    }

    /// Replaces all lines of `name` by one (where the first was, or at the end).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter().position(|(k, _)| names_match(k, name)) {
            Some(i) => {
                self.entries[i].1 = value;
                let mut n = 0;
                self.entries.retain(|(k, _)| {
                    if names_match(k, name) {
                        n += 1;
                        n == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(name, value),
        }
    }

    /// All lines in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn write(&self, out: &mut Vec<u8>, body_len: usize) {
        for (k, v) in &self.entries {
            if k.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {body_len}\r\n\r\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_editing() {
        let mut h = Headers::default();
        h.push("From", "a");
        h.push(
            "Via",
            "SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2;branch=z9hG4bK2",
        );
        h.push_front("Via", "SIP/2.0/UDP me:3;branch=z9hG4bK0");
        assert_eq!(
            h.iter().nth(1).map(|x| x.1),
            Some("SIP/2.0/UDP me:3;branch=z9hG4bK0")
        );
        assert_eq!(
            h.pop_first_value("Via").as_deref(),
            Some("SIP/2.0/UDP me:3;branch=z9hG4bK0")
        );
        assert_eq!(
            h.pop_first_value("v").as_deref(),
            Some("SIP/2.0/UDP a:1;branch=z9hG4bK1")
        );
        assert_eq!(h.values("Via"), ["SIP/2.0/UDP b:2;branch=z9hG4bK2"]);
        h.push_front("Route", "<sip:x;lr>");
        assert_eq!(
            h.iter().next().map(|x| x.0),
            Some("Route"),
            "no Route yet: goes on top"
        );
        h.push("Route", "<sip:y;lr>");
        h.set("Route", "<sip:z;lr>");
        assert_eq!(h.get_all("Route").collect::<Vec<_>>(), ["<sip:z;lr>"]);
        assert_eq!(h.remove("route"), 1);
    }
}
