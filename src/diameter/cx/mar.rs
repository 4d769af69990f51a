//! Multimedia-Auth-Request/Answer (TS 29.229 §6.1.7, §6.1.8; procedure TS 29.228 §6.3):
//! the S-CSCF fetches authentication vectors (AKA, or SIP Digest's HA1) from the HSS, and
//! sends RAND||AUTS back for re-synchronisation.

use crate::diameter::codec::*;

use super::avp::*;
use super::*;

/// SIP-Digest-Authenticate (§6.3.36): what the S-CSCF needs to check SIP Digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipDigestAuthenticate {
    /// Digest-Realm.
    pub realm: String,
    /// Digest-QoP.
    pub qop: Option<String>,
    /// Digest-HA1 (lowercase hex).
    pub ha1: String,
    /// Digest-Algorithm.
    pub algorithm: Option<String>,
}

/// SIP-Auth-Data-Item (§6.3.13).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipAuthDataItem {
    /// SIP-Item-Number.
    pub item_number: Option<u32>,
    /// SIP-Authentication-Scheme (`SIP Digest`, `Digest-AKAv1-MD5`, `Unknown`).
    pub scheme: String,
    /// SIP-Authenticate (AKA: RAND || AUTN).
    pub authenticate: Option<Vec<u8>>,
    /// SIP-Authorization (AKA: XRES; in a MAR: RAND || AUTS for re-synchronisation).
    pub authorization: Option<Vec<u8>>,
    /// Confidentiality-Key.
    pub confidentiality_key: Option<Vec<u8>>,
    /// Integrity-Key.
    pub integrity_key: Option<Vec<u8>>,
    /// SIP-Digest-Authenticate.
    pub digest: Option<SipDigestAuthenticate>,
}

impl SipAuthDataItem {
    /// The grouped AVP. SIP-Digest-Authenticate carries V only (table 6.3.1) and its
    /// RFC 4740 Digest-* members no vendor.
    fn to_avp(&self) -> Avp {
        let mut g = Vec::new();
        if let Some(n) = self.item_number {
            g.push(vu(AVP_SIP_ITEM_NUMBER, n));
        }
        if !self.scheme.is_empty() {
            g.push(vs(AVP_SIP_AUTHENTICATION_SCHEME, &self.scheme));
        }
        if let Some(b) = &self.authenticate {
            g.push(v(AVP_SIP_AUTHENTICATE, b));
        }
        if let Some(b) = &self.authorization {
            g.push(v(AVP_SIP_AUTHORIZATION, b));
        }
        if let Some(b) = &self.confidentiality_key {
            g.push(v(AVP_CONFIDENTIALITY_KEY, b));
        }
        if let Some(b) = &self.integrity_key {
            g.push(v(AVP_INTEGRITY_KEY, b));
        }
        if let Some(d) = &self.digest {
            let mut dg = vec![Avp::utf8(AVP_DIGEST_REALM, None, true, &d.realm)];
            if let Some(a) = &d.algorithm {
                dg.push(Avp::utf8(AVP_DIGEST_ALGORITHM, None, true, a));
            }
            if let Some(q) = &d.qop {
                dg.push(Avp::utf8(AVP_DIGEST_QOP, None, true, q));
            }
            dg.push(Avp::utf8(AVP_DIGEST_HA1, None, true, &d.ha1));
            g.push(Avp::grouped(AVP_SIP_DIGEST_AUTHENTICATE, V, false, dg));
        }
        Avp::grouped(AVP_SIP_AUTH_DATA_ITEM, V, true, g)
    }

    fn from_avp(a: &Avp) -> Result<SipAuthDataItem, CxError> {
        let g = a.as_grouped()?;
        let digest = match g
            .iter()
            .find(|x| x.code == AVP_SIP_DIGEST_AUTHENTICATE && x.vendor_id == V)
        {
            Some(d) => {
                let dg = d.as_grouped()?;
                Some(SipDigestAuthenticate {
                    realm: opt_str(&dg, AVP_DIGEST_REALM, None)?
                        .ok_or(missing(AVP_DIGEST_REALM, None))?,
                    qop: opt_str(&dg, AVP_DIGEST_QOP, None)?,
                    ha1: opt_str(&dg, AVP_DIGEST_HA1, None)?
                        .ok_or(missing(AVP_DIGEST_HA1, None))?,
                    algorithm: opt_str(&dg, AVP_DIGEST_ALGORITHM, None)?,
                })
            }
            None => None,
        };
        Ok(SipAuthDataItem {
            item_number: opt_u32(&g, AVP_SIP_ITEM_NUMBER, V)?,
            scheme: opt_str(&g, AVP_SIP_AUTHENTICATION_SCHEME, V)?.unwrap_or_default(),
            authenticate: opt_bytes(&g, AVP_SIP_AUTHENTICATE, V),
            authorization: opt_bytes(&g, AVP_SIP_AUTHORIZATION, V),
            confidentiality_key: opt_bytes(&g, AVP_CONFIDENTIALITY_KEY, V),
            integrity_key: opt_bytes(&g, AVP_INTEGRITY_KEY, V),
            digest,
        })
    }
}

/// Multimedia-Auth-Request (§6.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultimediaAuthRequest {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Destination-Realm.
    pub destination_realm: String,
    /// Destination-Host.
    pub destination_host: Option<String>,
    /// User-Name (IMPI).
    pub user_name: String,
    /// Public-Identity.
    pub public_identity: String,
    /// Server-Name of the asking S-CSCF.
    pub server_name: String,
    /// SIP-Number-Auth-Items wanted.
    pub number_auth_items: u32,
    /// SIP-Auth-Data-Item: the scheme, and RAND||AUTS for re-synchronisation.
    pub auth_data: SipAuthDataItem,
}

impl CxMessage for MultimediaAuthRequest {
    const COMMAND_CODE: u32 = CMD_MULTIMEDIA_AUTH;
    const IS_REQUEST: bool = true;

    fn encode(&self) -> Message {
        let mut m = request_head(
            Self::COMMAND_CODE,
            &self.session_id,
            &self.origin_host,
            &self.origin_realm,
        );
        destination(
            &mut m,
            self.destination_host.as_deref(),
            &self.destination_realm,
        );
        m.push(Avp::utf8(AVP_USER_NAME, None, true, &self.user_name));
        m.push(vs(AVP_PUBLIC_IDENTITY, &self.public_identity));
        m.push(self.auth_data.to_avp());
        m.push(vu(AVP_SIP_NUMBER_AUTH_ITEMS, self.number_auth_items));
        m.push(vs(AVP_SERVER_NAME, &self.server_name));
        m
    }

    fn decode(m: &Message) -> Result<Self, CxError> {
        let h = read_head(m)?;
        Ok(MultimediaAuthRequest {
            destination_realm: req_str(m, AVP_DESTINATION_REALM, None)?,
            destination_host: opt_str(&m.avps, AVP_DESTINATION_HOST, None)?,
            user_name: req_str(m, AVP_USER_NAME, None)?,
            public_identity: req_str(m, AVP_PUBLIC_IDENTITY, V)?,
            auth_data: SipAuthDataItem::from_avp(
                m.avp(AVP_SIP_AUTH_DATA_ITEM, V)
                    .ok_or(missing(AVP_SIP_AUTH_DATA_ITEM, V))?,
            )?,
            number_auth_items: req_u32(&m.avps, AVP_SIP_NUMBER_AUTH_ITEMS, V)?,
            server_name: req_str(m, AVP_SERVER_NAME, V)?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}

/// Multimedia-Auth-Answer (§6.1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultimediaAuthAnswer {
    /// Session-Id.
    pub session_id: String,
    /// Origin-Host.
    pub origin_host: String,
    /// Origin-Realm.
    pub origin_realm: String,
    /// Result.
    pub result: CxResult,
    /// User-Name.
    pub user_name: Option<String>,
    /// Public-Identity.
    pub public_identity: Option<String>,
    /// SIP-Number-Auth-Items.
    pub number_auth_items: Option<u32>,
    /// SIP-Auth-Data-Items.
    pub items: Vec<SipAuthDataItem>,
}

impl CxMessage for MultimediaAuthAnswer {
    const COMMAND_CODE: u32 = CMD_MULTIMEDIA_AUTH;
    const IS_REQUEST: bool = false;

    fn encode(&self) -> Message {
        let mut m = answer_head(
            Self::COMMAND_CODE,
            &self.session_id,
            &self.result,
            &self.origin_host,
            &self.origin_realm,
        );
        if let Some(u) = &self.user_name {
            m.push(Avp::utf8(AVP_USER_NAME, None, true, u));
        }
        if let Some(p) = &self.public_identity {
            m.push(vs(AVP_PUBLIC_IDENTITY, p));
        }
        if let Some(n) = self.number_auth_items {
            m.push(vu(AVP_SIP_NUMBER_AUTH_ITEMS, n));
        }
        for i in &self.items {
            m.push(i.to_avp());
        }
        m
    }

    fn decode(m: &Message) -> Result<Self, CxError> {
        let h = read_head(m)?;
        Ok(MultimediaAuthAnswer {
            result: read_result(m)?,
            user_name: opt_str(&m.avps, AVP_USER_NAME, None)?,
            public_identity: opt_str(&m.avps, AVP_PUBLIC_IDENTITY, V)?,
            number_auth_items: opt_u32(&m.avps, AVP_SIP_NUMBER_AUTH_ITEMS, V)?,
            items: m
                .avps_of(AVP_SIP_AUTH_DATA_ITEM, V)
                .map(SipAuthDataItem::from_avp)
                .collect::<Result<_, _>>()?,
            session_id: h.session_id,
            origin_host: h.origin_host,
            origin_realm: h.origin_realm,
        })
    }
}
