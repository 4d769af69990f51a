//! The registration event package (RFC 3680) as the S-CSCF serves it (TS 24.229 §5.4.2):
//! subscriptions to `Event: reg` for a registered public identity, and the `reginfo+xml`
//! NOTIFY bodies sent on subscription, registration, refresh, expiry, de-registration and
//! network-initiated de-registration (RTR).

use std::time::Instant;

/// One subscription to a user's registration state (the notifier's side of the dialog).
#[derive(Debug, Clone)]
pub struct RegSubscription {
    /// The watched AOR (canonical).
    pub aor: String,
    /// Call-ID of the subscription dialog.
    pub call_id: String,
    /// Our From (with our tag): the SUBSCRIBE's To plus a tag.
    pub local: String,
    /// The subscriber's From.
    pub remote: String,
    /// Where NOTIFYs go (the SUBSCRIBE's Contact).
    pub remote_target: String,
    /// Route set (the SUBSCRIBE's Record-Route, in order).
    pub route_set: Vec<String>,
    /// Our CSeq for NOTIFY.
    pub cseq: u32,
    /// reginfo version (RFC 3680 §5.3: +1 per NOTIFY).
    pub version: u32,
    /// When the subscription lapses.
    pub expires_at: Instant,
}

/// Why a contact's state changed (RFC 3680 §5.3 `event` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactEvent {
    /// A new binding.
    Registered,
    /// A refresh.
    Refreshed,
    /// It lapsed.
    Expired,
    /// The user removed it.
    Unregistered,
    /// The network removed it (RTR).
    Rejected,
}

impl ContactEvent {
    fn as_str(&self) -> &'static str {
        match self {
            ContactEvent::Registered => "registered",
            ContactEvent::Refreshed => "refreshed",
            ContactEvent::Expired => "expired",
            ContactEvent::Unregistered => "unregistered",
            ContactEvent::Rejected => "rejected",
        }
    }
    fn active(&self) -> bool {
        matches!(self, ContactEvent::Registered | ContactEvent::Refreshed)
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A full-state reginfo document (RFC 3680 §5.4) for the identities of one registration set.
/// `contacts` are (URI, seconds left); `event` says what just happened to them.
pub fn reginfo_xml(
    version: u32,
    aors: &[String],
    contacts: &[(String, u64)],
    event: ContactEvent,
) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"{version}\" state=\"full\">\n"
    );
    let reg_state = if event.active() && !contacts.is_empty() {
        "active"
    } else {
        "terminated"
    };
    for (n, aor) in aors.iter().enumerate() {
        x.push_str(&format!(
            "  <registration aor=\"{}\" id=\"r{n}\" state=\"{reg_state}\">\n",
            esc(aor)
        ));
        for (m, (uri, left)) in contacts.iter().enumerate() {
            let st = if event.active() {
                "active"
            } else {
                "terminated"
            };
            x.push_str(&format!(
                "    <contact id=\"c{n}-{m}\" state=\"{st}\" event=\"{}\" expires=\"{left}\">\n      <uri>{}</uri>\n    </contact>\n",
                event.as_str(),
                esc(uri)
            ));
        }
        x.push_str("  </registration>\n");
    }
    x.push_str("</reginfo>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reginfo_is_well_formed_and_says_what_happened() {
        let x = reginfo_xml(
            3,
            &["sip:alice@ims.lab".into(), "tel:+15550001".into()],
            &[("sip:alice@127.0.0.1:5062".into(), 600)],
            ContactEvent::Registered,
        );
        assert!(x.contains("version=\"3\" state=\"full\""));
        assert!(x.contains("aor=\"tel:+15550001\" id=\"r1\" state=\"active\""));
        assert!(x.contains("event=\"registered\" expires=\"600\""));
        let mut r = quick_xml::Reader::from_str(&x);
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}"),
            }
        }
        let gone = reginfo_xml(
            4,
            &["sip:alice@ims.lab".into()],
            &[("sip:a@h".into(), 0)],
            ContactEvent::Rejected,
        );
        assert!(gone.contains("state=\"terminated\""));
        assert!(gone.contains("event=\"rejected\""));
    }
}
