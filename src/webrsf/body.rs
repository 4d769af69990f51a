//! The JSON request bodies of the WebRSF REST interface (the table in [`super::http`]), read
//! from bytes without a socket: the handlers call these after reading the body, and the fuzz
//! targets call them directly. Every function returns a [`WebError::BadRequest`] on bad input.

use serde_json::{json, Value};

use super::WebError;
use crate::ue::chat::SessionIds;

/// A JSON object body: whitespace only (or nothing) is `{}`; malformed JSON or anything but an
/// object is a 400.
pub fn json_object(bytes: &[u8]) -> Result<Value, WebError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| WebError::BadRequest(format!("malformed JSON: {e}")))?;
    if !v.is_object() {
        return Err(WebError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    Ok(v)
}

/// An optional string member (`null` counts as absent).
pub fn str_field<'a>(v: &'a Value, name: &str) -> Result<Option<&'a str>, WebError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WebError::BadRequest(format!("'{name}' must be a string"))),
    }
}

/// A required string member.
pub fn required<'a>(v: &'a Value, name: &str) -> Result<&'a str, WebError> {
    str_field(v, name)?.ok_or_else(|| WebError::BadRequest(format!("'{name}' is required")))
}

/// The optional RCS session identifiers a client may set on a new chat or message.
pub fn session_ids(v: &Value) -> Result<SessionIds, WebError> {
    Ok(SessionIds {
        conversation_id: str_field(v, "conversation_id")?.map(str::to_string),
        contribution_id: str_field(v, "contribution_id")?.map(str::to_string),
    })
}

/// `POST /Session`: `{"password", "impi"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login<'a> {
    /// The IMS password.
    pub password: &'a str,
    /// The private identity, when not the default one.
    pub impi: Option<&'a str>,
}

/// Reads a `POST /Session` body.
pub fn login(v: &Value) -> Result<Login<'_>, WebError> {
    Ok(Login {
        password: required(v, "password")?,
        impi: str_field(v, "impi")?,
    })
}

/// `POST /Chat`: `{"to", "text", "conversation_id"?, "contribution_id"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartChat<'a> {
    /// The peer's user id or address.
    pub to: &'a str,
    /// The first message.
    pub text: &'a str,
    /// Session identifiers.
    pub ids: SessionIds,
}

/// Reads a `POST /Chat` body.
pub fn start_chat(v: &Value) -> Result<StartChat<'_>, WebError> {
    Ok(StartChat {
        to: required(v, "to")?,
        text: required(v, "text")?,
        ids: session_ids(v)?,
    })
}

/// `PUT /Chat/{id}`: `{"status"?, "message_id"?}`; the status defaults to `delivered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUpdate<'a> {
    /// delivered, displayed, accepted, declined or closed (checked by the gateway).
    pub status: &'a str,
    /// One message, else every waiting one.
    pub message_id: Option<&'a str>,
}

/// Reads a `PUT /Chat/{id}` body.
pub fn instance_update(v: &Value) -> Result<InstanceUpdate<'_>, WebError> {
    Ok(InstanceUpdate {
        status: str_field(v, "status")?.unwrap_or("delivered"),
        message_id: str_field(v, "message_id")?,
    })
}

/// `POST /Chat/{id}/Messages`: `{"text", "conversation_id"?, "contribution_id"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMessage<'a> {
    /// The message.
    pub text: &'a str,
    /// Session identifiers.
    pub ids: SessionIds,
}

/// Reads a `POST /Chat/{id}/Messages` body.
pub fn post_message(v: &Value) -> Result<PostMessage<'_>, WebError> {
    Ok(PostMessage {
        text: required(v, "text")?,
        ids: session_ids(v)?,
    })
}

/// Reads a `PUT /Chat/{id}/Messages/{msgId}/Status` body: `{"status"}`.
pub fn message_status(v: &Value) -> Result<&str, WebError> {
    required(v, "status")
}

/// Reads a `POST /Chat/{id}/Composing` body: `{"active"?}`, true when absent.
pub fn composing(v: &Value) -> Result<bool, WebError> {
    match v.get("active") {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(WebError::BadRequest(
            "'active' must be true or false".into(),
        )),
    }
}

/// `POST /Group`: `{"subject", "participants": ["bob", ...]}`, or OMA's
/// `{"groupChatSessionInformation": {"subject", "participant": [{"address"}]}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateGroup {
    /// Subject (may be empty).
    pub subject: String,
    /// The members to invite, user ids or URIs as given.
    pub participants: Vec<String>,
}

/// Reads a `POST /Group` body: at least one participant, at most
/// [`super::MAX_PARTICIPANTS_PER_REQUEST`]; a subject of at most [`super::MAX_SUBJECT`]
/// characters.
pub fn create_group(v: &Value) -> Result<CreateGroup, WebError> {
    let info = match v.get("groupChatSessionInformation") {
        None | Some(Value::Null) => v,
        Some(i @ Value::Object(_)) => i,
        Some(_) => {
            return Err(WebError::BadRequest(
                "'groupChatSessionInformation' must be an object".into(),
            ))
        }
    };
    let subject = str_field(info, "subject")?.unwrap_or("").trim().to_string();
    if subject.chars().count() > super::MAX_SUBJECT {
        return Err(WebError::BadRequest(format!(
            "the subject is longer than {} characters",
            super::MAX_SUBJECT
        )));
    }
    if subject.chars().any(|c| c.is_control()) {
        return Err(WebError::BadRequest(
            "the subject has control characters".into(),
        ));
    }
    let participants = participants(info)?;
    if participants.is_empty() {
        return Err(WebError::BadRequest(
            "'participants' must name at least one member".into(),
        ));
    }
    Ok(CreateGroup {
        subject,
        participants,
    })
}

/// The participant list of a group body: `"participants": ["bob", "sip:x@y"]` or OMA's
/// `"participant": [{"address": "..."}]` (or one object); at most
/// [`super::MAX_PARTICIPANTS_PER_REQUEST`].
pub fn participants(v: &Value) -> Result<Vec<String>, WebError> {
    let list = match (v.get("participants"), v.get("participant")) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => return Ok(Vec::new()),
    };
    let items: Vec<&Value> = match list {
        Value::Array(a) => a.iter().collect(),
        o @ Value::Object(_) => vec![o],
        Value::String(_) => vec![list],
        _ => {
            return Err(WebError::BadRequest(
                "'participants' must be a list of user ids or {\"address\"} objects".into(),
            ))
        }
    };
    if items.len() > super::MAX_PARTICIPANTS_PER_REQUEST {
        return Err(WebError::BadRequest(format!(
            "at most {} participants per request",
            super::MAX_PARTICIPANTS_PER_REQUEST
        )));
    }
    let mut out = Vec::new();
    for i in items {
        let a = match i {
            Value::String(s) => s.as_str(),
            Value::Object(_) => required(i, "address")?,
            _ => {
                return Err(WebError::BadRequest(
                    "a participant is a user id or {\"address\"}".into(),
                ))
            }
        };
        let a = a.trim();
        if a.is_empty() {
            return Err(WebError::BadRequest("an empty participant address".into()));
        }
        out.push(a.to_string());
    }
    Ok(out)
}

/// Reads a `POST /Group/{id}/Messages` body: `{"text"}` or OMA's `{"chatMessage": {"text"}}`.
pub fn group_message(v: &Value) -> Result<&str, WebError> {
    match v.get("chatMessage") {
        None | Some(Value::Null) => required(v, "text"),
        Some(m @ Value::Object(_)) => required(m, "text"),
        Some(_) => Err(WebError::BadRequest(
            "'chatMessage' must be an object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_and_refuse() {
        assert_eq!(json_object(b" \n").unwrap(), json!({}));
        assert!(json_object(b"[1]").is_err());
        assert!(json_object(b"{\"a\":").is_err());
        let v = json_object(br#"{"password":"pw","impi":null}"#).unwrap();
        assert_eq!(
            login(&v).unwrap(),
            Login {
                password: "pw",
                impi: None
            }
        );
        let v = json_object(br#"{"to":"bob","text":1}"#).unwrap();
        assert_eq!(
            start_chat(&v),
            Err(WebError::BadRequest("'text' must be a string".into()))
        );
        let v = json_object(b"{}").unwrap();
        assert_eq!(instance_update(&v).unwrap().status, "delivered");
        assert!(composing(&v).unwrap());
        assert!(message_status(&v).is_err());
        assert!(post_message(&v).is_err());
        let v = json_object(br#"{"active":"yes"}"#).unwrap();
        assert!(composing(&v).is_err());
    }

    #[test]
    fn group_bodies_read_both_forms_and_refuse() {
        let v = json!({"subject": "lunch", "participants": ["bob", "carol"]});
        let g = create_group(&v).unwrap();
        assert_eq!((g.subject.as_str(), g.participants.len()), ("lunch", 2));
        let v = json!({"groupChatSessionInformation": {"subject": "s",
            "participant": [{"address": "sip:bob@ims.lab"}]}});
        assert_eq!(create_group(&v).unwrap().participants, ["sip:bob@ims.lab"]);
        for bad in [
            json!({"subject": "s"}),
            json!({"participants": []}),
            json!({"participants": [1]}),
            json!({"participants": [{"name": "bob"}]}),
            json!({"participants": ["  "]}),
            json!({"participants": "bob", "subject": 3}),
            json!({"participants": ["bob"], "subject": "x".repeat(super::super::MAX_SUBJECT + 1)}),
            json!({"groupChatSessionInformation": []}),
            json!({"participants": vec!["bob"; super::super::MAX_PARTICIPANTS_PER_REQUEST + 1]}),
        ] {
            assert!(create_group(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            group_message(&json!({"chatMessage": {"text": "hi"}})).unwrap(),
            "hi"
        );
        assert_eq!(group_message(&json!({"text": "hi"})).unwrap(), "hi");
        assert!(group_message(&json!({"chatMessage": "hi"})).is_err());
    }
}
