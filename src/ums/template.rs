//! Message templates as AlimTalk-style senders keep them (seed 003): a text with `#{name}`
//! placeholders, registered by the business, approved by the operator, then the only source
//! of a templated message's text. Rendering refuses a missing or an unknown variable, so a
//! sent text always matches its approved template.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::core::UmsError;

/// Longest text (a template's, a message's): an LMS of 2,000 characters.
pub const MAX_TEXT: usize = 2000;
/// Placeholders one template may hold.
pub const MAX_VARIABLES: usize = 32;
/// Longest template id and variable name.
pub const MAX_NAME: usize = 64;

/// Where a template stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateStatus {
    /// Registered, waiting for the operator: it cannot be used yet.
    Pending,
    /// Approved: messages may be sent from it.
    Approved,
}

/// A registered template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub id: String,
    pub text: String,
    pub status: TemplateStatus,
    /// Its placeholders' names, in order of first use.
    pub variables: Vec<String>,
    /// When it was registered, Unix seconds.
    pub created: u64,
}

fn invalid(error: &'static str, detail: impl Into<String>) -> UmsError {
    UmsError::Invalid {
        error,
        detail: detail.into(),
    }
}

/// True for a template id or variable name: 1 to [`MAX_NAME`] of `A-Z a-z 0-9 _ - .`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// The pieces of a template text: literal runs and placeholder names.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

fn pieces(text: &str) -> Result<Vec<Piece<'_>>, UmsError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#{") {
        if at > 0 {
            out.push(Piece::Literal(&rest[..at]));
        }
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(invalid(
                "bad_template",
                "a placeholder '#{' is not closed with '}'",
            ));
        };
        let name = &after[..end];
        if !valid_name(name) {
            return Err(invalid(
                "bad_template",
                format!("placeholder name '{name}' is not 1 to {MAX_NAME} of A-Z a-z 0-9 _ - ."),
            ));
        }
        out.push(Piece::Variable(name));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest));
    }
    Ok(out)
}

impl Template {
    /// A new template, pending approval; refuses a bad id, an empty or over-long text and
    /// malformed placeholders.
    pub fn new(id: &str, text: &str, now: u64) -> Result<Template, UmsError> {
        if !valid_name(id) {
            return Err(invalid(
                "bad_template_id",
                format!("template id '{id}' is not 1 to {MAX_NAME} of A-Z a-z 0-9 _ - ."),
            ));
        }
        if text.trim().is_empty() {
            return Err(invalid("empty_text", "the template has no text"));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(invalid(
                "text_too_long",
                format!("a template holds at most {MAX_TEXT} characters"),
            ));
        }
        let mut variables: Vec<String> = Vec::new();
        for p in pieces(text)? {
            if let Piece::Variable(v) = p {
                if !variables.iter().any(|x| x == v) {
                    variables.push(v.to_string());
                }
            }
        }
        if variables.len() > MAX_VARIABLES {
            return Err(invalid(
                "bad_template",
                format!("a template holds at most {MAX_VARIABLES} placeholders"),
            ));
        }
        Ok(Template {
            id: id.to_string(),
            text: text.to_string(),
            status: TemplateStatus::Pending,
            variables,
            created: now,
        })
    }

    /// The text with every placeholder replaced; refuses a missing variable, one the template
    /// does not have, and a result longer than [`MAX_TEXT`].
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<String, UmsError> {
        let missing: Vec<&str> = self
            .variables
            .iter()
            .filter(|v| !vars.contains_key(*v))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(invalid(
                "missing_variable",
                format!("template '{}' needs {}", self.id, missing.join(", ")),
            ));
        }
        let extra: Vec<&str> = vars
            .keys()
            .filter(|k| !self.variables.contains(k))
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            return Err(invalid(
                "unknown_variable",
                format!("template '{}' has no {}", self.id, extra.join(", ")),
            ));
        }
        let mut out = String::new();
        for p in pieces(&self.text)? {
            match p {
                Piece::Literal(l) => out.push_str(l),
                Piece::Variable(v) => out.push_str(vars.get(v).map_or("", String::as_str)),
            }
            if out.chars().count() > MAX_TEXT {
                return Err(invalid(
                    "text_too_long",
                    format!("the rendered text is over {MAX_TEXT} characters"),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_template_renders_with_exactly_its_variables() {
        let t = Template::new("otp", "Your code is #{code}; #{code} expires at #{t}.", 1).unwrap();
        assert_eq!(t.variables, vec!["code", "t"]);
        assert_eq!(t.status, TemplateStatus::Pending);
        assert_eq!(
            t.render(&vars(&[("code", "1234"), ("t", "10:00")]))
                .unwrap(),
            "Your code is 1234; 1234 expires at 10:00."
        );
        let e = t.render(&vars(&[("code", "1")])).unwrap_err();
        assert!(
            matches!(
                e,
                UmsError::Invalid {
                    error: "missing_variable",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = t
            .render(&vars(&[("code", "1"), ("t", "2"), ("x", "3")]))
            .unwrap_err();
        assert!(
            matches!(
                e,
                UmsError::Invalid {
                    error: "unknown_variable",
                    ..
                }
            ),
            "{e:?}"
        );
        let plain = Template::new("hi", "Hello #not a placeholder {x}", 1).unwrap();
        assert!(plain.variables.is_empty());
        assert_eq!(plain.render(&vars(&[])).unwrap(), plain.text);
    }

    #[test]
    fn bad_templates_and_over_long_renders_are_refused() {
        for (id, text) in [
            ("", "x"),
            ("a b", "x"),
            ("ok", ""),
            ("ok", "open #{code"),
            ("ok", "bad #{co de}"),
            ("ok", "empty #{}"),
        ] {
            assert!(Template::new(id, text, 0).is_err(), "{id:?} {text:?}");
        }
        assert!(Template::new("long", &"a".repeat(MAX_TEXT + 1), 0).is_err());
        let t = Template::new("big", "#{v}#{v}", 0).unwrap();
        let e = t.render(&vars(&[("v", &"x".repeat(1001))])).unwrap_err();
        assert!(
            matches!(
                e,
                UmsError::Invalid {
                    error: "text_too_long",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
