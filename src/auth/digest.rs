//! HTTP Digest as SIP uses it: WWW-Authenticate challenges and Authorization credentials
//! (RFC 2617 §3.2, qop=auth), and AKAv1-MD5 (RFC 3310: the nonce is base64(RAND || AUTN), the
//! password is RES as raw octets, a sync failure carries `auts`).

use std::fmt;

use base64::Engine;
use md5::{Digest as _, Md5};

use crate::sip::headers::split_list;

/// Errors parsing digest headers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// Not a `Digest` header.
    #[error("not a Digest header")]
    NotDigest,
    /// A required parameter is missing.
    #[error("missing parameter {0}")]
    Missing(&'static str),
    /// A parameter value is invalid.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Parses `Digest a="b", c=d` into (lowercase name, unquoted value) pairs.
fn params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let v = value.trim();
    let rest = match v.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("digest") => rest,
        _ => return Err(DigestError::NotDigest),
    };
    let mut out = Vec::new();
    for p in split_list(rest) {
        let Some((k, val)) = p.split_once('=') else {
            continue;
        };
        let val = val.trim();
        let val = match val.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            Some(inner) => unescape(inner),
            None => val.to_string(),
        };
        out.push((k.trim().to_ascii_lowercase(), val));
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn take(p: &[(String, String)], name: &str) -> Option<String> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A `WWW-Authenticate: Digest ...` challenge (RFC 2617 §3.2.1; ck/ik per TS 33.203 between
/// S-CSCF and P-CSCF).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// Realm.
    pub realm: String,
    /// Nonce (base64(RAND||AUTN) for AKA).
    pub nonce: String,
    /// `MD5` or `AKAv1-MD5`.
    pub algorithm: Option<String>,
    /// `auth`.
    pub qop: Option<String>,
    /// Opaque.
    pub opaque: Option<String>,
    /// The previous nonce was only stale.
    pub stale: bool,
    /// Cipher key (hex), S-CSCF to P-CSCF only.
    pub ck: Option<String>,
    /// Integrity key (hex), S-CSCF to P-CSCF only.
    pub ik: Option<String>,
}

impl Challenge {
    /// Parses a challenge.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let p = params(value)?;
        Ok(Challenge {
            realm: take(&p, "realm").ok_or(DigestError::Missing("realm"))?,
            nonce: take(&p, "nonce").ok_or(DigestError::Missing("nonce"))?,
            algorithm: take(&p, "algorithm"),
            qop: take(&p, "qop"),
            opaque: take(&p, "opaque"),
            stale: take(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            ck: take(&p, "ck"),
            ik: take(&p, "ik"),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm={}, nonce={}",
            quote(&self.realm),
            quote(&self.nonce)
        )?;
        if let Some(a) = &self.algorithm {
            write!(f, ", algorithm={a}")?;
        }
        if let Some(q) = &self.qop {
            write!(f, ", qop={}", quote(q))?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", quote(o))?;
        }
        if self.stale {
            f.write_str(", stale=TRUE")?;
        }
        if let Some(c) = &self.ck {
            write!(f, ", ck={}", quote(c))?;
        }
        if let Some(i) = &self.ik {
            write!(f, ", ik={}", quote(i))?;
        }
        Ok(())
    }
}

/// `Authorization: Digest ...` credentials (RFC 2617 §3.2.2, RFC 3310 §3.4 auts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Username (the IMPI in IMS).
    pub username: String,
    /// Realm.
    pub realm: String,
    /// Nonce answered.
    pub nonce: String,
    /// digest-uri.
    pub uri: String,
    /// request-digest (empty in an initial IMS REGISTER).
    pub response: String,
    /// Algorithm.
    pub algorithm: Option<String>,
    /// Client nonce.
    pub cnonce: Option<String>,
    /// Nonce count (8 hex digits).
    pub nc: Option<String>,
    /// qop chosen.
    pub qop: Option<String>,
    /// Opaque echoed.
    pub opaque: Option<String>,
    /// AKA re-synchronisation token, base64.
    pub auts: Option<String>,
}

impl Credentials {
    /// Parses credentials. `username` is required; the others default to empty (the initial
    /// REGISTER of TS 24.229 §5.1.1.2.1 carries `nonce=""` and `response=""`).
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let p = params(value)?;
        Ok(Credentials {
            username: take(&p, "username").ok_or(DigestError::Missing("username"))?,
            realm: take(&p, "realm").unwrap_or_default(),
            nonce: take(&p, "nonce").unwrap_or_default(),
            uri: take(&p, "uri").unwrap_or_default(),
            response: take(&p, "response").unwrap_or_default(),
            algorithm: take(&p, "algorithm"),
            cnonce: take(&p, "cnonce"),
            nc: take(&p, "nc"),
            qop: take(&p, "qop"),
            opaque: take(&p, "opaque"),
            auts: take(&p, "auts"),
        })
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response)
        )?;
        if let Some(a) = &self.algorithm {
            write!(f, ", algorithm={a}")?;
        }
        if let Some(c) = &self.cnonce {
            write!(f, ", cnonce={}", quote(c))?;
        }
        if let Some(q) = &self.qop {
            write!(f, ", qop={q}")?;
        }
        if let Some(n) = &self.nc {
            write!(f, ", nc={n}")?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", quote(o))?;
        }
        if let Some(a) = &self.auts {
            write!(f, ", auts={}", quote(a))?;
        }
        Ok(())
    }
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// HA1 = MD5(username:realm:password), lowercase hex. For AKAv1-MD5 the password is RES as
/// raw octets (RFC 3310 §3.2).
pub fn ha1_hex(username: &str, realm: &str, password: &[u8]) -> String {
    md5_hex(&[username.as_bytes(), realm.as_bytes(), password])
}

/// request-digest of RFC 2617 §3.2.2.1 (qop=auth, or the RFC 2069 form without qop).
pub fn response_hex(
    ha1_hex: &str,
    nonce: &str,
    nc: Option<&str>,
    cnonce: Option<&str>,
    qop: Option<&str>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some(q) => md5_hex(&[
            ha1_hex.as_bytes(),
            nonce.as_bytes(),
            nc.unwrap_or("").as_bytes(),
            cnonce.unwrap_or("").as_bytes(),
            q.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => md5_hex(&[ha1_hex.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Checks credentials against HA1 (constant-time comparison of the response).
pub fn verify(creds: &Credentials, ha1_hex: &str, method: &str) -> bool {
    let expected = response_hex(
        ha1_hex,
        &creds.nonce,
        creds.nc.as_deref(),
        creds.cnonce.as_deref(),
        creds.qop.as_deref(),
        method,
        &creds.uri,
    );
    let got = creds.response.to_ascii_lowercase();
    if got.len() != expected.len() {
        return false;
    }
    got.bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// What a challenge asked for, so the answer can be held to it.
#[derive(Debug, Clone, Copy)]
pub struct Issued<'a> {
    /// The realm of the challenge.
    pub realm: &'a str,
    /// `MD5` or `AKAv1-MD5`.
    pub algorithm: &'a str,
    /// The qop offered (`auth`), if any.
    pub qop: Option<&'a str>,
}

/// Why credentials do not answer the challenge they name ([`conformance`]). The texts go to
/// the log and the trace, never to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConformanceError {
    /// Another realm than the challenge's.
    #[error("realm '{got}' is not the challenge's '{issued}'")]
    Realm {
        /// The realm of the credentials.
        got: String,
        /// The realm of the challenge.
        issued: String,
    },
    /// Another algorithm than the challenge's (no label counts as MD5).
    #[error("algorithm '{got}' is not the challenge's '{issued}'")]
    Algorithm {
        /// The algorithm of the credentials.
        got: String,
        /// The algorithm of the challenge.
        issued: String,
    },
    /// qop=auth without a client nonce.
    #[error("qop=auth without a cnonce")]
    NoCnonce,
    /// A nonce count that is not 8 hex digits above zero (the value given, or empty).
    #[error("nonce count '{0}' is not 8 hex digits above zero")]
    NonceCount(String),
    /// Another qop than the one offered, or none (a downgrade to the RFC 2069 form).
    #[error(
        "qop {} where the challenge offered '{offered}'",
        .got.as_deref().map_or("missing".to_string(), |q| format!("'{q}'"))
    )]
    QopNotOffered {
        /// The qop of the credentials, if any.
        got: Option<String>,
        /// The qop the challenge offered.
        offered: String,
    },
    /// A qop where the challenge offered none.
    #[error("qop '{0}' where none was offered")]
    QopUnasked(String),
    /// A digest-uri that names neither the Request-URI nor an address the request was sent to.
    #[error("digest-uri '{uri}' is not the Request-URI '{request_uri}'")]
    DigestUri {
        /// The digest-uri of the credentials.
        uri: String,
        /// The Request-URI.
        request_uri: String,
    },
}

/// Checks that credentials answer the challenge they name as it was issued, before the hash is
/// looked at (RFC 2617 §3.2.2, RFC 7616 §3.4, RFC 3310 §3.4): the same realm; the same
/// algorithm (a response labelled `SHA-256` against an MD5 challenge is not an MD5 response;
/// no label means MD5); the qop offered (no downgrade to the RFC 2069 form), with a cnonce and
/// a nonce count of 8 hex digits above zero; a digest-uri that names the Request-URI or one of
/// `also` (scheme, user, host and port; parameters may differ in order or presence, as clients
/// differ there; a registrar passes the address the UE sent its REGISTER to, which sipp and
/// some phones put there). The error says which, for the log and the trace (never for the
/// client).
pub fn conformance(
    c: &Credentials,
    issued: &Issued<'_>,
    request_uri: &str,
    also: &[String],
) -> Result<(), ConformanceError> {
    if c.realm != issued.realm {
        return Err(ConformanceError::Realm {
            got: c.realm.clone(),
            issued: issued.realm.to_string(),
        });
    }
    let algorithm = c.algorithm.as_deref().unwrap_or("MD5");
    if !algorithm.eq_ignore_ascii_case(issued.algorithm) {
        return Err(ConformanceError::Algorithm {
            got: algorithm.to_string(),
            issued: issued.algorithm.to_string(),
        });
    }
    match (issued.qop, c.qop.as_deref()) {
        (Some(offered), Some(q)) if q.eq_ignore_ascii_case(offered) => {
            if c.cnonce.as_deref().is_none_or(str::is_empty) {
                return Err(ConformanceError::NoCnonce);
            }
            let nc = c.nc.as_deref().unwrap_or("");
            if nc.len() != 8 || u32::from_str_radix(nc, 16).map_or(true, |n| n == 0) {
                return Err(ConformanceError::NonceCount(nc.to_string()));
            }
        }
        (Some(offered), q) => {
            return Err(ConformanceError::QopNotOffered {
                got: q.map(str::to_string),
                offered: offered.to_string(),
            })
        }
        (None, Some(q)) => return Err(ConformanceError::QopUnasked(q.to_string())),
        (None, None) => {}
    }
    if !same_uri(&c.uri, request_uri) && !also.iter().any(|a| same_uri(&c.uri, a)) {
        return Err(ConformanceError::DigestUri {
            uri: c.uri.clone(),
            request_uri: request_uri.to_string(),
        });
    }
    Ok(())
}

fn same_uri(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        crate::sip::SipUri::parse(a.trim()),
        crate::sip::SipUri::parse(b.trim()),
    ) {
        (Ok(x), Ok(y)) => {
            x.secure == y.secure
                && x.user == y.user
                && x.host.eq_ignore_ascii_case(&y.host)
                && x.port.unwrap_or(5060) == y.port.unwrap_or(5060)
        }
        _ => false,
    }
}

/// The AKA nonce: base64(RAND || AUTN) (RFC 3310 §3.2).
pub fn aka_nonce(rand: &[u8; 16], autn: &[u8; 16]) -> String {
    let mut b = rand.to_vec();
    b.extend_from_slice(autn);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// RAND and AUTN from an AKA nonce (server data after them is allowed and ignored).
pub fn parse_aka_nonce(nonce: &str) -> Result<([u8; 16], [u8; 16]), DigestError> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(nonce.trim())
        .map_err(|_| DigestError::Invalid("AKA nonce (not base64)"))?;
    if b.len() < 32 {
        return Err(DigestError::Invalid("AKA nonce (shorter than RAND||AUTN)"));
    }
    let mut rand = [0u8; 16];
    let mut autn = [0u8; 16];
    rand.copy_from_slice(&b[..16]);
    autn.copy_from_slice(&b[16..32]);
    Ok((rand, autn))
}

/// AUTS from its base64 form (RFC 3310 §3.4).
pub fn decode_auts(auts: &str) -> Result<[u8; 14], DigestError> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(auts.trim())
        .map_err(|_| DigestError::Invalid("auts (not base64)"))?;
    b.try_into()
        .map_err(|_| DigestError::Invalid("auts (not 14 octets)"))
}

/// AUTS in base64.
pub fn encode_auts(auts: &[u8; 14]) -> String {
    base64::engine::general_purpose::STANDARD.encode(auts)
}

/// A fresh server nonce.
pub fn new_nonce() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
}

/// A fresh client nonce.
pub fn new_cnonce() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example() {
        // RFC 2617 §3.5 (with the erratum's uri and the well-known response).
        let ha1 = ha1_hex("Mufasa", "testrealm@host.com", b"Circle Of Life");
        let r = response_hex(
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some("00000001"),
            Some("0a4f113b"),
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn challenge_and_credentials_round_trip() {
        let ch = Challenge::parse(
            "Digest realm=\"ims.lab\", nonce=\"a,b\\\"c\", algorithm=AKAv1-MD5, qop=\"auth,auth-int\", ck=\"00\", stale=true",
        )
        .unwrap();
        assert_eq!(ch.nonce, "a,b\"c");
        assert_eq!(ch.qop.as_deref(), Some("auth,auth-int"));
        assert!(ch.stale);
        assert_eq!(Challenge::parse(&ch.to_string()).unwrap(), ch);
        let c = Credentials::parse(
            "digest  username=\"alice@ims.lab\",realm=\"ims.lab\" , nonce=\"\", uri=\"sip:ims.lab\", response=\"\", x=y",
        )
        .unwrap();
        assert_eq!(c.username, "alice@ims.lab");
        assert!(c.response.is_empty());
        assert_eq!(Credentials::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn aka_round_trip_and_verify() {
        let rand = [7u8; 16];
        let autn = [9u8; 16];
        let n = aka_nonce(&rand, &autn);
        assert_eq!(parse_aka_nonce(&n).unwrap(), (rand, autn));
        let res = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let ha1 = ha1_hex("bob@ims.lab", "ims.lab", &res);
        let c = Credentials {
            username: "bob@ims.lab".into(),
            realm: "ims.lab".into(),
            nonce: n.clone(),
            uri: "sip:ims.lab".into(),
            response: response_hex(
                &ha1,
                &n,
                Some("00000001"),
                Some("abc"),
                Some("auth"),
                "REGISTER",
                "sip:ims.lab",
            ),
            algorithm: Some("AKAv1-MD5".into()),
            cnonce: Some("abc".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
            ..Default::default()
        };
        assert!(verify(&c, &ha1, "REGISTER"));
        assert!(!verify(
            &c,
            &ha1_hex("bob@ims.lab", "ims.lab", b"x"),
            "REGISTER"
        ));
        let auts = [3u8; 14];
        assert_eq!(decode_auts(&encode_auts(&auts)).unwrap(), auts);
        assert!(decode_auts("AAAA").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        for s in [
            "",
            "Basic abc",
            "Digest",
            "Digest nonce=\"x\"",
            "\u{0}\u{1}",
            "Digest realm=\"unterminated",
        ] {
            assert!(Challenge::parse(s).is_err(), "{s:?}");
        }
        assert!(Credentials::parse("Digest realm=\"x\"").is_err());
        assert!(parse_aka_nonce("!!").is_err());
    }

    #[test]
    fn an_answer_is_held_to_the_challenge_it_names() {
        let md5 = Issued {
            realm: "ims.lab",
            algorithm: "MD5",
            qop: Some("auth"),
        };
        let good = Credentials {
            username: "alice@ims.lab".into(),
            realm: "ims.lab".into(),
            nonce: "n".into(),
            uri: "sip:ims.lab".into(),
            response: "r".into(),
            algorithm: Some("MD5".into()),
            cnonce: Some("c".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
            ..Default::default()
        };
        assert_eq!(conformance(&good, &md5, "sip:ims.lab", &[]), Ok(()));
        assert_eq!(
            conformance(&good, &md5, "sip:IMS.lab;transport=udp", &[]),
            Ok(())
        );
        let no_label = Credentials {
            algorithm: None,
            ..good.clone()
        };
        assert_eq!(
            conformance(&no_label, &md5, "sip:ims.lab", &[]),
            Ok(()),
            "MD5 by default"
        );
        let bad = [
            Credentials {
                realm: "other.example".into(),
                ..good.clone()
            },
            Credentials {
                algorithm: Some("SHA-256".into()),
                ..good.clone()
            },
            Credentials {
                qop: None,
                ..good.clone()
            },
            Credentials {
                cnonce: None,
                ..good.clone()
            },
            Credentials {
                nc: Some("00000000".into()),
                ..good.clone()
            },
            Credentials {
                nc: Some("1".into()),
                ..good.clone()
            },
            Credentials {
                uri: "sip:elsewhere.example".into(),
                ..good.clone()
            },
            Credentials {
                uri: "sip:ims.lab:5070".into(),
                ..good.clone()
            },
        ];
        for c in bad {
            assert!(conformance(&c, &md5, "sip:ims.lab", &[]).is_err(), "{c}");
        }
        let proxy = Credentials {
            uri: "sip:127.0.0.1:5060".into(),
            ..good.clone()
        };
        assert_eq!(
            conformance(&proxy, &md5, "sip:ims.lab", &["sip:127.0.0.1:5060".into()]),
            Ok(()),
            "the address the UE sent to (sipp puts it there)"
        );
        assert!(conformance(&proxy, &md5, "sip:ims.lab", &[]).is_err());
        let aka = Issued {
            realm: "ims.lab",
            algorithm: "AKAv1-MD5",
            qop: Some("auth"),
        };
        assert!(
            conformance(&good, &aka, "sip:ims.lab", &[]).is_err(),
            "MD5 answer to AKA"
        );
        let aka_answer = Credentials {
            algorithm: Some("akav1-md5".into()),
            ..good
        };
        assert_eq!(conformance(&aka_answer, &aka, "sip:ims.lab", &[]), Ok(()));
    }

    /// The texts the S-CSCF logs and traces after "the answer does not fit its challenge: ".
    #[test]
    fn conformance_errors_say_which_part_is_off() {
        let cases = [
            (
                ConformanceError::Realm {
                    got: "other".into(),
                    issued: "ims.lab".into(),
                },
                "realm 'other' is not the challenge's 'ims.lab'",
            ),
            (
                ConformanceError::Algorithm {
                    got: "SHA-256".into(),
                    issued: "MD5".into(),
                },
                "algorithm 'SHA-256' is not the challenge's 'MD5'",
            ),
            (ConformanceError::NoCnonce, "qop=auth without a cnonce"),
            (
                ConformanceError::NonceCount("1".into()),
                "nonce count '1' is not 8 hex digits above zero",
            ),
            (
                ConformanceError::QopNotOffered {
                    got: None,
                    offered: "auth".into(),
                },
                "qop missing where the challenge offered 'auth'",
            ),
            (
                ConformanceError::QopNotOffered {
                    got: Some("auth-int".into()),
                    offered: "auth".into(),
                },
                "qop 'auth-int' where the challenge offered 'auth'",
            ),
            (
                ConformanceError::QopUnasked("auth".into()),
                "qop 'auth' where none was offered",
            ),
            (
                ConformanceError::DigestUri {
                    uri: "sip:x".into(),
                    request_uri: "sip:ims.lab".into(),
                },
                "digest-uri 'sip:x' is not the Request-URI 'sip:ims.lab'",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
