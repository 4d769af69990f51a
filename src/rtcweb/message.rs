//! The web side of the RTCWeb gateway (patent KR101499354B1, figures 8 and 9): the messages a
//! browser and the gateway exchange over a WebSocket, as a pure codec.
//!
//! The patent names the messages (`OFFER`, `WAITING`, `Ringing`, `PRANSWER`, `OK`, `ANSWER`,
//! `SUBSCRIBE`, `NOTIFY`) but not their encoding; it says the web signalling protocol "is not
//! standardised and may differ between RTCWeb providers" (figure 6, S616). We chose one JSON
//! object per WebSocket text frame:
//!
//! ```text
//! {"type":"OFFER","session":"s1","to":"sip:bob@ims.lab","sdp":"v=0\r\n..."}
//! ```
//!
//! Fields (every one a JSON string except `expires`, a number; unknown fields are ignored so a
//! newer page can talk to an older gateway):
//!
//! | field     | meaning                                                                   |
//! |-----------|---------------------------------------------------------------------------|
//! | `type`    | the message type, spelled as the patent spells it (case matters)          |
//! | `session` | the call's id, chosen by the caller's page (web -> IMS) or by the gateway  |
//! |           | (IMS -> web); 1–64 of `A-Z a-z 0-9 . _ -`                                  |
//! | `to`      | a SIP or tel URI: the callee (`OFFER`), the presentity (`SUBSCRIBE`)       |
//! | `from`    | a SIP or tel URI: the caller (`OFFER` to the page), the presentity (`NOTIFY`), |
//! |           | the web user (`REGISTER`)                                                  |
//! | `sdp`     | an SDP session description (RFC 4566), verbatim                            |
//! | `for`     | on `OK` and `ERROR`: the type of the message being confirmed or refused    |
//! | `state`   | on `STATE`: a figure-7 client state (`Calling`, `InCall`, `Reloading`, `Hangup`) |
//! | `reason`  | on `BYE` and `ERROR`: why, in words (a SIP status line for IMS failures)    |
//! | `expires` | on `SUBSCRIBE`: seconds, 0 ends the subscription                           |
//! | `body`    | on `NOTIFY`: the presence document (PIDF, RFC 3863), verbatim               |
//! | `password`| on `REGISTER`: the web user's IMS password (the gateway registers them with it; |
//! |           | never sent back, never recorded)                                           |
//!
//! Types, and which fields each needs (R required, o optional):
//!
//! | type        | direction | session | to | from | sdp | other                     | patent |
//! |-------------|-----------|---------|----|------|-----|---------------------------|--------|
//! | `REGISTER`  | page->gw  |         |    | R    |     | `password` R              | no (gateway registers itself, fig. 5); our login |
//! | `OFFER`     | both      | R       | R* | R**  | R   |                           | fig. 8 S806 |
//! | `WAITING`   | gw->page  | R       |    |      |     |                           | fig. 8 S808 |
//! | `Ringing`   | both      | R       |    |      | o   |                           | fig. 8 S820 |
//! | `PRANSWER`  | page->gw  | R       |    |      | o   |                           | fig. 8 S822 |
//! | `OK`        | both      | o       |    |      | o   | `for` R                   | fig. 8 S832, fig. 9 S908/S918 |
//! | `ANSWER`    | page->gw  | R       |    |      | o   |                           | fig. 8 S834 |
//! | `BYE`       | both      | R       |    |      |     | `reason` o                | silent (fig. 7 "Hangup") |
//! | `RELOAD`    | page->gw  | R       |    |      |     |                           | silent (fig. 7 "Reloading") |
//! | `STATE`     | gw->page  | R       |    | o    | o   | `state` R                 | silent (fig. 7) |
//! | `SUBSCRIBE` | page->gw  | o       | R  |      |     | `expires` o               | fig. 9 S906 |
//! | `NOTIFY`    | gw->page  | o       |    | R    |     | `body` o                  | fig. 9 S924 |
//! | `ERROR`     | gw->page  | o       |    |      |     | `reason` R, `for` o       | silent |
//!
//! (*) `to` is required on an `OFFER` from the page; (**) `from` on an `OFFER` to the page.
//! An `OFFER` to the page in a call it already holds (`InCall`, after `RELOAD` took the call
//! back) is a new offer for new media: the gateway's media bridge offers the reloaded page's
//! new RTCPeerConnection a new browser side; the page answers with `ANSWER` (and `sdp`), the
//! gateway confirms with `OK`. The IMS side sees nothing of it.
//! [`WebMessage::to_json`] prints the fields in the order of the first table, so that printing
//! what was parsed is byte-stable: `parse(to_json(m)) == m`.

use std::fmt;

use serde_json::{Map, Value};

/// Largest frame accepted from a page (an SDP offer with many candidates fits many times).
pub const MAX_FRAME: usize = 64 * 1024;
/// Largest `session` id.
pub const MAX_SESSION: usize = 64;
/// Largest URI in `to`/`from`.
pub const MAX_URI: usize = 256;
/// Largest `reason`.
pub const MAX_REASON: usize = 256;

/// The message types (the patent's names where it has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `REGISTER`: a page says which web user it is.
    Register,
    /// `OFFER`: a call with an SDP offer.
    Offer,
    /// `WAITING`: the gateway is forwarding the OFFER.
    Waiting,
    /// `Ringing`: the callee is alerted.
    Ringing,
    /// `PRANSWER`: the caller acknowledges a provisional answer (becomes PRACK).
    Pranswer,
    /// `OK`: a confirmation (a SIP 200 OK, or the gateway's own).
    Ok,
    /// `ANSWER`: the final answer (becomes ACK, or the 200 OK when the page is the callee).
    Answer,
    /// `BYE`: hang-up, either way.
    Bye,
    /// `RELOAD`: a reloaded page re-attaches to its call.
    Reload,
    /// `STATE`: the gateway tells the page the call's state.
    State,
    /// `SUBSCRIBE`: presence subscription.
    Subscribe,
    /// `NOTIFY`: presence state.
    Notify,
    /// `ERROR`: a refused message.
    Error,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 13] = [
        Kind::Register,
        Kind::Offer,
        Kind::Waiting,
        Kind::Ringing,
        Kind::Pranswer,
        Kind::Ok,
        Kind::Answer,
        Kind::Bye,
        Kind::Reload,
        Kind::State,
        Kind::Subscribe,
        Kind::Notify,
        Kind::Error,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "REGISTER",
            Kind::Offer => "OFFER",
            Kind::Waiting => "WAITING",
            Kind::Ringing => "Ringing",
            Kind::Pranswer => "PRANSWER",
            Kind::Ok => "OK",
            Kind::Answer => "ANSWER",
            Kind::Bye => "BYE",
            Kind::Reload => "RELOAD",
            Kind::State => "STATE",
            Kind::Subscribe => "SUBSCRIBE",
            Kind::Notify => "NOTIFY",
            Kind::Error => "ERROR",
        }
    }

    /// The kind of a wire name (exact spelling).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A web client's call state (patent figure 7).
///
/// ```text
///  OFFER --> Calling --accepted--> InCall --app ends / BYE--> Hangup
///               |                   |   ^                       ^
///               +--refused/BYE------+---|-----------------------+
///                                   v   | re-attach             |
///                                 Reloading --grace over / BYE--+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Set-up in progress (either direction).
    Calling,
    /// The session is up.
    InCall,
    /// The page went away mid-call; the IMS dialog is kept for a grace period.
    Reloading,
    /// Ended.
    Hangup,
}

impl ClientState {
    /// The wire name (figure 7's words).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Calling => "Calling",
            ClientState::InCall => "InCall",
            ClientState::Reloading => "Reloading",
            ClientState::Hangup => "Hangup",
        }
    }

    fn parse(s: &str) -> Option<ClientState> {
        [
            ClientState::Calling,
            ClientState::InCall,
            ClientState::Reloading,
            ClientState::Hangup,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// One message of the web protocol. Which fields a kind needs is checked by
/// [`WebMessage::parse`]; the others are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebMessage {
    /// `type`.
    pub kind: Kind,
    /// `session`.
    pub session: Option<String>,
    /// `for`.
    pub of: Option<Kind>,
    /// `to`.
    pub to: Option<String>,
    /// `from`.
    pub from: Option<String>,
    /// `state`.
    pub state: Option<ClientState>,
    /// `expires`.
    pub expires: Option<u32>,
    /// `reason`.
    pub reason: Option<String>,
    /// `sdp`.
    pub sdp: Option<String>,
    /// `body`.
    pub body: Option<String>,
    /// `password` (REGISTER only).
    pub password: Option<String>,
}

/// Why a frame was refused; [`fmt::Display`] is the `reason` of the `ERROR` answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The frame is larger than [`MAX_FRAME`].
    #[error("frame of {0} bytes is larger than {MAX_FRAME}")]
    TooLarge(usize),
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// No `type`, or not a string.
    #[error("no \"type\"")]
    MissingType,
    /// A `type` we do not know.
    #[error("unknown message type \"{0}\"")]
    UnknownType(String),
    /// A field this type needs is absent.
    #[error("{kind} needs \"{field}\"")]
    MissingField {
        /// The message type.
        kind: Kind,
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong JSON type or an invalid value.
    #[error("bad \"{field}\": {why}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

impl MessageError {
    /// The `ERROR` frame that answers a refused frame (the call and the other pages are not
    /// touched: a bad frame never reaches a call).
    pub fn to_web(&self) -> WebMessage {
        let of = match self {
            MessageError::MissingField { kind, .. } => Some(*kind),
            _ => None,
        };
        WebMessage::error(None, of, self.to_string())
    }
}

impl WebMessage {
    /// A message of `kind` with no fields.
    pub fn new(kind: Kind) -> WebMessage {
        WebMessage {
            kind,
            session: None,
            of: None,
            to: None,
            from: None,
            state: None,
            expires: None,
            reason: None,
            sdp: None,
            body: None,
            password: None,
        }
    }

    /// A message of `kind` for `session`.
    pub fn for_session(kind: Kind, session: &str) -> WebMessage {
        WebMessage {
            session: Some(session.to_string()),
            ..WebMessage::new(kind)
        }
    }

    /// `OK` confirming `of`.
    pub fn ok(session: Option<&str>, of: Kind) -> WebMessage {
        WebMessage {
            session: session.map(str::to_string),
            of: Some(of),
            ..WebMessage::new(Kind::Ok)
        }
    }

    /// `ERROR` with `reason`, about a message of kind `of`.
    pub fn error(session: Option<&str>, of: Option<Kind>, reason: impl Into<String>) -> WebMessage {
        let mut reason: String = reason.into();
        truncate(&mut reason, MAX_REASON);
        WebMessage {
            session: session.map(str::to_string),
            of,
            reason: Some(reason),
            ..WebMessage::new(Kind::Error)
        }
    }

    /// With `sdp`.
    pub fn with_sdp(mut self, sdp: Option<&str>) -> WebMessage {
        self.sdp = sdp.map(str::to_string);
        self
    }

    /// With `reason`.
    pub fn with_reason(mut self, reason: Option<&str>) -> WebMessage {
        self.reason = reason.map(|r| {
            let mut r = r.to_string();
            truncate(&mut r, MAX_REASON);
            r
        });
        self
    }

    /// Parses one text frame. Never panics.
    pub fn parse(frame: &[u8]) -> Result<WebMessage, MessageError> {
        if frame.len() > MAX_FRAME {
            return Err(MessageError::TooLarge(frame.len()));
        }
        let v: Value = serde_json::from_slice(frame).map_err(|e| {
            let mut s = e.to_string();
            truncate(&mut s, 120);
            MessageError::NotJson(s)
        })?;
        let Value::Object(obj) = v else {
            return Err(MessageError::NotJson("not an object".into()));
        };
        let kind = match obj.get("type") {
            Some(Value::String(t)) => {
                Kind::parse(t).ok_or_else(|| MessageError::UnknownType(short(t)))?
            }
            _ => return Err(MessageError::MissingType),
        };
        let of = match text(&obj, "for")? {
            Some(t) => Some(Kind::parse(&t).ok_or(MessageError::InvalidField {
                field: "for",
                why: "not a message type",
            })?),
            None => None,
        };
        let state = match text(&obj, "state")? {
            Some(t) => Some(ClientState::parse(&t).ok_or(MessageError::InvalidField {
                field: "state",
                why: "not a figure-7 state",
            })?),
            None => None,
        };
        let expires = match obj.get("expires") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or(
                MessageError::InvalidField {
                    field: "expires",
                    why: "not a number of seconds",
                },
            )?),
        };
        let m = WebMessage {
            kind,
            session: checked(text(&obj, "session")?, "session", is_session_id)?,
            of,
            to: checked(text(&obj, "to")?, "to", is_uri)?,
            from: checked(text(&obj, "from")?, "from", is_uri)?,
            state,
            expires,
            reason: checked(text(&obj, "reason")?, "reason", is_reason)?,
            sdp: text(&obj, "sdp")?,
            body: text(&obj, "body")?,
            password: checked(text(&obj, "password")?, "password", is_password)?,
        };
        m.check_required()?;
        Ok(m)
    }

    /// The fields a kind must have (the second table of the module doc).
    fn check_required(&self) -> Result<(), MessageError> {
        use Kind::*;
        let need = |present: bool, field: &'static str| {
            if present {
                Result::Ok(())
            } else {
                Err(MessageError::MissingField {
                    kind: self.kind,
                    field,
                })
            }
        };
        match self.kind {
            Offer | Waiting | Ringing | Pranswer | Answer | Bye | Reload | State => {
                need(self.session.is_some(), "session")?
            }
            _ => {}
        }
        match self.kind {
            Register => {
                need(self.from.is_some(), "from")?;
                need(self.password.is_some(), "password")
            }
            Offer => {
                need(self.sdp.is_some(), "sdp")?;
                need(self.to.is_some() || self.from.is_some(), "to")
            }
            Ok => need(self.of.is_some(), "for"),
            State => need(self.state.is_some(), "state"),
            Subscribe => need(self.to.is_some(), "to"),
            Notify => need(self.from.is_some(), "from"),
            Error => need(self.reason.is_some(), "reason"),
            _ => Result::Ok(()),
        }
    }

    /// Prints the frame: the fields in a fixed order, absent ones left out.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + self.sdp.as_ref().map_or(0, |s| s.len()));
        out.push_str("{\"type\":");
        push_str(&mut out, self.kind.as_str());
        let mut field = |name: &str, v: Option<&str>| {
            if let Some(v) = v {
                out.push_str(",\"");
                out.push_str(name);
                out.push_str("\":");
                push_str(&mut out, v);
            }
        };
        field("session", self.session.as_deref());
        field("for", self.of.map(Kind::as_str));
        field("to", self.to.as_deref());
        field("from", self.from.as_deref());
        field("state", self.state.map(ClientState::as_str));
        let expires = self.expires.map(|e| e.to_string());
        if let Some(e) = &expires {
            out.push_str(",\"expires\":");
            out.push_str(e);
        }
        let mut field = |name: &str, v: Option<&str>| {
            if let Some(v) = v {
                out.push_str(",\"");
                out.push_str(name);
                out.push_str("\":");
                push_str(&mut out, v);
            }
        };
        field("reason", self.reason.as_deref());
        field("sdp", self.sdp.as_deref());
        field("body", self.body.as_deref());
        field("password", self.password.as_deref());
        out.push('}');
        out
    }
}

fn push_str(out: &mut String, s: &str) {
    // serde_json's string escaping cannot fail for a &str.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn text(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, MessageError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MessageError::InvalidField {
            field,
            why: "not a string",
        }),
    }
}

fn checked(
    v: Option<String>,
    field: &'static str,
    ok: fn(&str) -> Result<(), &'static str>,
) -> Result<Option<String>, MessageError> {
    if let Some(s) = &v {
        ok(s).map_err(|why| MessageError::InvalidField { field, why })?;
    }
    Ok(v)
}

fn is_password(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_REASON {
        return Err("longer than 256 bytes");
    }
    Ok(())
}

fn is_session_id(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > MAX_SESSION {
        return Err("must be 1 to 64 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// A URI that is safe to put in a Request-URI and a To/From header: a `sip:`, `sips:` or
/// `tel:` URI of visible ASCII without `<`, `>`, `"` or `,` (no header injection).
pub fn is_uri(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > MAX_URI {
        return Err("must be 1 to 256 characters");
    }
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:") || lower.starts_with("tel:")) {
        return Err("not a sip:, sips: or tel: URI");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b','))
    {
        return Err("characters not allowed in a URI");
    }
    Ok(())
}

fn is_reason(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_REASON {
        return Err("longer than 256 bytes");
    }
    if s.chars().any(char::is_control) {
        return Err("control characters");
    }
    Ok(())
}

fn short(s: &str) -> String {
    let mut s = s.to_string();
    truncate(&mut s, 40);
    s.chars().filter(|c| !c.is_control()).collect()
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: &str) -> WebMessage {
        let m = WebMessage::parse(frame.as_bytes()).unwrap();
        let printed = m.to_json();
        assert_eq!(WebMessage::parse(printed.as_bytes()).unwrap(), m);
        assert_eq!(
            WebMessage::parse(printed.as_bytes()).unwrap().to_json(),
            printed
        );
        m
    }

    #[test]
    fn offer_parses_and_prints_in_field_order() {
        let m = round_trip(
            r#"{"sdp":"v=0\r\n","to":"sip:bob@ims.lab","session":"s1","type":"OFFER","x":1}"#,
        );
        assert_eq!(m.kind, Kind::Offer);
        assert_eq!(m.sdp.as_deref(), Some("v=0\r\n"));
        assert_eq!(
            m.to_json(),
            r#"{"type":"OFFER","session":"s1","to":"sip:bob@ims.lab","sdp":"v=0\r\n"}"#
        );
    }

    #[test]
    fn every_kind_round_trips() {
        let frames = [
            r#"{"type":"REGISTER","from":"sip:alice@ims.lab","password":"alice-secret"}"#,
            r#"{"type":"OFFER","session":"a","from":"tel:+15551234","sdp":""}"#,
            r#"{"type":"WAITING","session":"a"}"#,
            r#"{"type":"Ringing","session":"a","sdp":"v=0"}"#,
            r#"{"type":"PRANSWER","session":"a"}"#,
            r#"{"type":"OK","session":"a","for":"PRANSWER"}"#,
            r#"{"type":"ANSWER","session":"a","sdp":"v=0"}"#,
            r#"{"type":"BYE","session":"a","reason":"486 Busy Here"}"#,
            r#"{"type":"RELOAD","session":"a"}"#,
            r#"{"type":"STATE","session":"a","from":"sip:b@x","state":"InCall","sdp":"v"}"#,
            r#"{"type":"SUBSCRIBE","to":"sip:bob@ims.lab","expires":600}"#,
            r#"{"type":"NOTIFY","from":"sip:bob@ims.lab","body":"<presence/>"}"#,
            r#"{"type":"ERROR","for":"ANSWER","reason":"no call"}"#,
        ];
        for (f, k) in frames.iter().zip(Kind::ALL) {
            let m = round_trip(f);
            assert_eq!(m.kind, k);
            assert_eq!(m.to_json(), *f);
        }
    }

    #[test]
    fn bad_frames_get_typed_errors() {
        let e = |s: &str| WebMessage::parse(s.as_bytes()).unwrap_err();
        assert_eq!(
            e(r#"{"type":"DIAL"}"#),
            MessageError::UnknownType("DIAL".into())
        );
        assert_eq!(
            e(r#"{"type":"ringing","session":"a"}"#).to_string(),
            "unknown message type \"ringing\""
        );
        assert_eq!(e(r#"{"session":"a"}"#), MessageError::MissingType);
        assert_eq!(e(r#"{"type":5}"#), MessageError::MissingType);
        assert!(matches!(e("[1]"), MessageError::NotJson(_)));
        assert!(matches!(e("{"), MessageError::NotJson(_)));
        assert_eq!(
            e(r#"{"type":"OFFER","session":"a","to":"sip:b@x"}"#),
            MessageError::MissingField {
                kind: Kind::Offer,
                field: "sdp"
            }
        );
        assert_eq!(
            e(r#"{"type":"ANSWER"}"#).to_string(),
            "ANSWER needs \"session\""
        );
        assert!(matches!(
            e(r#"{"type":"OFFER","session":"a b","to":"sip:b@x","sdp":""}"#),
            MessageError::InvalidField {
                field: "session",
                ..
            }
        ));
        // No header injection through a URI.
        assert!(matches!(
            e("{\"type\":\"OFFER\",\"session\":\"a\",\"to\":\"sip:b@x\\r\\nVia: x\",\"sdp\":\"\"}"),
            MessageError::InvalidField { field: "to", .. }
        ));
        assert!(matches!(
            e(r#"{"type":"OFFER","session":"a","to":"http://x","sdp":""}"#),
            MessageError::InvalidField { field: "to", .. }
        ));
        assert!(matches!(
            e(r#"{"type":"SUBSCRIBE","to":"sip:b@x","expires":-1}"#),
            MessageError::InvalidField {
                field: "expires",
                ..
            }
        ));
        assert!(matches!(
            e(r#"{"type":"OK","for":"NOPE"}"#),
            MessageError::InvalidField { field: "for", .. }
        ));
        let big = format!(r#"{{"type":"OFFER","sdp":"{}"}}"#, "a".repeat(MAX_FRAME));
        assert!(matches!(e(&big), MessageError::TooLarge(_)));
    }

    #[test]
    fn refusals_become_error_frames() {
        let e = WebMessage::parse(br#"{"type":"DIAL","session":"a"}"#).unwrap_err();
        assert_eq!(
            e.to_web().to_json(),
            r#"{"type":"ERROR","reason":"unknown message type \"DIAL\""}"#
        );
        let e = WebMessage::parse(br#"{"type":"PRANSWER"}"#).unwrap_err();
        assert_eq!(
            e.to_web().to_json(),
            r#"{"type":"ERROR","for":"PRANSWER","reason":"PRANSWER needs \"session\""}"#
        );
        let big = vec![b' '; MAX_FRAME + 1];
        let m = WebMessage::parse(&big).unwrap_err().to_web();
        assert_eq!(
            m.reason.as_deref(),
            Some("frame of 65537 bytes is larger than 65536")
        );
        round_trip(&m.to_json());
    }

    #[test]
    fn unknown_type_in_error_is_short_and_clean() {
        let long = format!(r#"{{"type":"{}\u0007"}}"#, "X".repeat(500));
        let MessageError::UnknownType(t) = WebMessage::parse(long.as_bytes()).unwrap_err() else {
            panic!()
        };
        assert!(t.len() <= 40 && !t.contains('\u{7}'));
    }

    #[test]
    fn error_builder_truncates_and_prints() {
        let m = WebMessage::error(Some("s"), Some(Kind::Answer), "é".repeat(300));
        assert!(m.reason.as_ref().unwrap().len() <= MAX_REASON);
        round_trip(&m.to_json());
    }
}
