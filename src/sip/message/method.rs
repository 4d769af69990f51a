//! SIP request methods (RFC 3261 §7.1, §27.4): the standard tokens and the extensions IMS uses,
//! with unknown tokens kept so that the endpoint can answer them 501 (§8.2.1).

use std::fmt;

/// A request method; unknown tokens are kept (RFC 3261 §8.2.1 answers them with 501/405).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// MESSAGE (RFC 3428)
    Message,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// PRACK (RFC 3262)
    Prack,
    /// UPDATE (RFC 3311)
    Update,
    /// INFO (RFC 6086)
    Info,
    /// REFER (RFC 3515)
    Refer,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Anything else.
    Other(String),
}

impl Method {
    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    /// Parses a token (case-sensitive per RFC 3261 §7.1, but lenient on case); never fails.
    pub fn parse(s: &str) -> Method {
        // rsip knows the standard methods; map its answer onto ours.
        match s.parse::<rsip::Method>() {
            Ok(m) => match m {
                rsip::Method::Invite => Method::Invite,
                rsip::Method::Ack => Method::Ack,
                rsip::Method::Bye => Method::Bye,
                rsip::Method::Cancel => Method::Cancel,
                rsip::Method::Register => Method::Register,
                rsip::Method::Options => Method::Options,
                rsip::Method::Message => Method::Message,
                rsip::Method::Subscribe => Method::Subscribe,
                rsip::Method::Notify => Method::Notify,
                rsip::Method::PRack => Method::Prack,
                rsip::Method::Update => Method::Update,
                rsip::Method::Info => Method::Info,
                rsip::Method::Refer => Method::Refer,
                rsip::Method::Publish => Method::Publish,
            },
            Err(_) => Method::Other(s.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
