//! What a chatbot sends and what a user answers it with (GSMA RCC.07 §3.6 / Universal
//! Profile "Chatbots", the JSON of RCC.71): the business sender of the UMS is shown to RCS
//! users as a chatbot — its Contact carries [`ISBOT_TAG`], its messages are rich cards
//! (`application/vnd.gsma.botmessage.v1.0+json`) whose suggested replies the user taps, and a
//! tap comes back as `application/vnd.gsma.botsuggestion.response.v1.0+json` with the reply's
//! text and the postback data the chatbot set. Pure; only the parts the lab uses (a general
//! purpose card with a title, a description and suggested replies) are read and written.

use serde::{Deserialize, Serialize};

/// The feature tag a chatbot registers with and answers OPTIONS with (RCC.07 §3.6.2.3).
pub const ISBOT_TAG: &str = "+g.gsma.rcs.isbot";
/// A rich card (RCC.07 §3.6.10.2).
pub const BOT_MESSAGE_TYPE: &str = "application/vnd.gsma.botmessage.v1.0+json";
/// A tapped suggestion (RCC.07 §3.6.10.4).
pub const SUGGESTION_RESPONSE_TYPE: &str = "application/vnd.gsma.botsuggestion.response.v1.0+json";

/// Suggested replies a card carries at most (RCC.07 allows up to 11 chips).
pub const MAX_SUGGESTIONS: usize = 11;
/// The longest suggestion text (RCC.07: 25 characters).
pub const MAX_SUGGESTION_TEXT: usize = 25;

/// Why a chatbot document does not read.
#[derive(Debug, thiserror::Error)]
pub enum ChatbotError {
    /// Not the JSON the type says.
    #[error("bad chatbot JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but no card (or no reply) in it.
    #[error("no {0} in the document")]
    Missing(&'static str),
}

/// A suggested reply: what the chip shows and what comes back when it is tapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub display_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postback: Option<Postback>,
}

/// The chatbot's own data for a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Postback {
    pub data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Suggestion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<Reply>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    suggestions: Vec<Suggestion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    card_orientation: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Card {
    layout: Layout,
    content: Content,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody {
    general_purpose_card: Card,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BotMessageDoc {
    message: MessageBody,
}

/// A rich card as the lab reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BotMessage {
    /// The card's title, when it has one.
    pub title: Option<String>,
    /// Its text.
    pub text: String,
    /// Its suggested replies (replies only: actions such as "dial" are not read).
    pub suggestions: Vec<Reply>,
}

impl BotMessage {
    /// A card with `text` and a suggested reply per entry of `replies` (its postback data is
    /// its text).
    pub fn with_replies(text: &str, replies: &[String]) -> BotMessage {
        BotMessage {
            title: None,
            text: text.to_string(),
            suggestions: replies
                .iter()
                .map(|r| Reply {
                    display_text: r.clone(),
                    postback: Some(Postback { data: r.clone() }),
                })
                .collect(),
        }
    }

    /// The JSON document (`application/vnd.gsma.botmessage.v1.0+json`).
    pub fn to_json(&self) -> Vec<u8> {
        let doc = BotMessageDoc {
            message: MessageBody {
                general_purpose_card: Card {
                    layout: Layout {
                        card_orientation: "VERTICAL".into(),
                    },
                    content: Content {
                        title: self.title.clone(),
                        description: Some(self.text.clone()),
                        suggestions: self
                            .suggestions
                            .iter()
                            .map(|r| Suggestion {
                                reply: Some(r.clone()),
                            })
                            .collect(),
                    },
                },
            },
        };
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// Reads a card.
    pub fn parse(body: &[u8]) -> Result<BotMessage, ChatbotError> {
        let doc: BotMessageDoc = serde_json::from_slice(body)?;
        let c = doc.message.general_purpose_card.content;
        if c.title.is_none() && c.description.is_none() {
            return Err(ChatbotError::Missing("title or description"));
        }
        Ok(BotMessage {
            title: c.title,
            text: c.description.unwrap_or_default(),
            suggestions: c
                .suggestions
                .into_iter()
                .filter_map(|s| s.reply)
                .take(MAX_SUGGESTIONS)
                .collect(),
        })
    }

    /// One line for a terminal: `TITLE: TEXT [Yes] [No]`.
    pub fn one_line(&self) -> String {
        let mut s = match &self.title {
            Some(t) if !self.text.is_empty() => format!("{t}: {}", self.text),
            Some(t) => t.clone(),
            None => self.text.clone(),
        };
        for r in &self.suggestions {
            s.push_str(&format!(" [{}]", r.display_text));
        }
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResponseBody {
    reply: Reply,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResponseDoc {
    response: ResponseBody,
}

/// The document a tap sends (`application/vnd.gsma.botsuggestion.response.v1.0+json`).
pub fn response_json(reply: &Reply) -> Vec<u8> {
    serde_json::to_vec(&ResponseDoc {
        response: ResponseBody {
            reply: reply.clone(),
        },
    })
    .unwrap_or_default()
}

/// Reads a tap.
pub fn parse_response(body: &[u8]) -> Result<Reply, ChatbotError> {
    let doc: ResponseDoc = serde_json::from_slice(body)?;
    Ok(doc.response.reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_with_replies_writes_the_rcc71_shape_and_reads_back() {
        let m = BotMessage::with_replies("Your code is 1234", &["Yes".into(), "No".into()]);
        let j: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(
            j["message"]["generalPurposeCard"]["layout"]["cardOrientation"],
            "VERTICAL"
        );
        let c = &j["message"]["generalPurposeCard"]["content"];
        assert_eq!(c["description"], "Your code is 1234");
        assert_eq!(c["suggestions"][0]["reply"]["displayText"], "Yes");
        assert_eq!(c["suggestions"][1]["reply"]["postback"]["data"], "No");
        assert_eq!(BotMessage::parse(&m.to_json()).unwrap(), m);
        assert_eq!(m.one_line(), "Your code is 1234 [Yes] [No]");
    }

    #[test]
    fn a_card_from_elsewhere_with_actions_keeps_its_replies() {
        let doc = br#"{"message":{"generalPurposeCard":{"layout":{"cardOrientation":"HORIZONTAL"},
            "content":{"title":"Order 42","description":"Shipped",
            "suggestions":[{"action":{"displayText":"Call","dialerAction":{"dialPhoneNumber":{"phoneNumber":"+1555"}}}},
            {"reply":{"displayText":"Thanks","postback":{"data":"thx"}}}]}}}}"#;
        let m = BotMessage::parse(doc).unwrap();
        assert_eq!(m.title.as_deref(), Some("Order 42"));
        assert_eq!(m.suggestions.len(), 1);
        assert_eq!(m.one_line(), "Order 42: Shipped [Thanks]");
    }

    #[test]
    fn a_tap_round_trips_and_bad_documents_are_errors() {
        let r = Reply {
            display_text: "Yes".into(),
            postback: Some(Postback {
                data: "yes-1".into(),
            }),
        };
        let j = response_json(&r);
        assert_eq!(
            String::from_utf8(j.clone()).unwrap(),
            r#"{"response":{"reply":{"displayText":"Yes","postback":{"data":"yes-1"}}}}"#
        );
        assert_eq!(parse_response(&j).unwrap(), r);
        assert!(parse_response(b"{}").is_err());
        assert!(BotMessage::parse(b"not json").is_err());
        assert!(BotMessage::parse(
            br#"{"message":{"generalPurposeCard":{"layout":{"cardOrientation":"VERTICAL"},"content":{}}}}"#
        )
        .is_err());
    }
}
