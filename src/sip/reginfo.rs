//! The `application/reginfo+xml` body of the registration event package (RFC 3680 §5.3,
//! §5.4; TS 24.229 §5.4.2.1.2 uses it as is): the S-CSCF writes it ([`reginfo_xml`]), the
//! P-CSCF and the UE read which registrations ended ([`terminated_aors`]). A codec, so that
//! nodes and the simulated UE share it without importing each other.

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

/// Each `<registration>` of a reginfo document (RFC 3680 §5.4) as (canonical AOR, state:
/// `init`, `active` or `terminated`).
pub fn registration_states(xml: &str) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e))
                if e.local_name().as_ref() == b"registration" =>
            {
                let mut aor = None;
                let mut state = None;
                for a in e.attributes().flatten() {
                    let v = String::from_utf8_lossy(&a.value).to_string();
                    match a.key.as_ref() {
                        b"aor" => aor = Some(v),
                        b"state" => state = Some(v),
                        _ => {}
                    }
                }
                if let (Some(aor), Some(state)) = (aor, state) {
                    // The canonical AOR, as `store::canonical_identity` computes it (the codec
                    // does not reach up into the store).
                    if let Ok(u) = super::Uri::parse(aor.trim()) {
                        out.push((u.aor(), state));
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// The AORs whose registration is `terminated` in a reginfo document (RFC 3680 §5.4).
pub fn terminated_aors(xml: &str) -> Vec<String> {
    registration_states(xml)
        .into_iter()
        .filter(|(_, s)| s == "terminated")
        .map(|(a, _)| a)
        .collect()
}
