//! MMS from the UMS, link-based (issue 20): a business uploads the media (`POST
//! /ums/v1/media`, kept in sled, flushed before the 201), then sends a message naming it; each
//! recipient gets an M-Notification.ind (OMA-TS-MMS_ENC-V1_3 §6.2) in a WAP Push over SMS
//! ([`crate::mms`]) whose X-Mms-Content-Location is the media's URL here, `GET
//! /ums/v1/media/{id}`, served without a token: the 128-bit random id is the capability, as
//! an MMSC's retrieval URL is. The push goes as submit_sm with esm_class UDHI and data_coding
//! 0x04 (8-bit), one per SMS part, a receipt asked for on the last; that receipt makes the
//! recipient `delivered` ("notification delivered"). When the phone fetches the URL (its
//! query names the message and recipient) the webhook gets `mms_retrieved`.
//!
//! ```text
//! business ── POST /ums/v1/media ──► UMS (sled)         phone
//!          ── POST /ums/v1/messages {"media"} ─► submit_sm ×n ─► SMSC ─► SMS-DELIVER ×n ─►│
//!                                      UMS ◄── GET /ums/v1/media/ID?m=..&i=.. ─────────────┘
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::core::{invalid, Channel, ChannelPolicy, Submission, UmsError};
use super::http::{error, json};
use super::{unix_now, Ums};
use crate::http_server::TimedBody;
use crate::mms::{bearer, Expiry, MessageClass, Notification, Push};
use crate::smpp::{Address, DataCoding, EsmClass, RegisteredDelivery, Sm, SmParams};
use crate::store::StoreError;

/// How long a notification says the message waits (X-Mms-Expiry, relative): 7 days.
pub const EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// The longest MMS subject (the message's text), in characters: with the URL it still fits
/// [`bearer::MAX_PARTS`] SMS.
pub const MAX_SUBJECT: usize = 100;
/// The longest media content type kept.
const MAX_CONTENT_TYPE: usize = 127;
/// The most of a refused upload's body read away before the refusal, and for how long.
const MAX_DRAIN: u64 = 16 * 1024 * 1024;
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The media bounds (`[ums] max_media_size`, `max_media`, `max_media_total`).
#[derive(Debug, Clone, Copy)]
pub struct MediaLimits {
    pub max_size: usize,
    pub max_count: usize,
    pub max_total: usize,
}

/// One upload as kept (its bytes in a tree of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMeta {
    pub id: String,
    pub content_type: String,
    pub size: usize,
    pub created: u64,
}

/// The trees `ums.media` (id -> [`MediaMeta`] as JSON) and `ums.media.data` (id -> bytes),
/// and what they hold, counted for the bounds.
pub struct MediaStore {
    meta: sled::Tree,
    data: sled::Tree,
    index: Mutex<HashMap<String, MediaMeta>>,
    limits: MediaLimits,
}

/// Why an upload is not kept.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Past `max_media` or `max_media_total`: 429.
    #[error("{0}")]
    Full(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MediaStore {
    /// Opens the trees and counts what they hold.
    pub fn open(db: &sled::Db, limits: MediaLimits) -> Result<MediaStore, StoreError> {
        let meta = db.open_tree("ums.media")?;
        let data = db.open_tree("ums.media.data")?;
        let index = meta
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice::<MediaMeta>(&v).ok())
            .map(|m| (m.id.clone(), m))
            .collect();
        Ok(MediaStore {
            meta,
            data,
            index: Mutex::new(index),
            limits,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, MediaMeta>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is kept under `id`.
    pub fn meta(&self, id: &str) -> Option<MediaMeta> {
        self.lock().get(id).cloned()
    }

    /// Keeps `bytes` (not yet flushed) under a fresh 128-bit random id.
    pub fn put(&self, content_type: &str, bytes: &[u8]) -> Result<MediaMeta, MediaError> {
        let m = MediaMeta {
            id: format!("{:032x}", rand::random::<u128>()),
            content_type: content_type.to_string(),
            size: bytes.len(),
            created: unix_now(),
        };
        {
            let mut idx = self.lock();
            let total: usize = idx.values().map(|m| m.size).sum();
            if idx.len() >= self.limits.max_count {
                return Err(MediaError::Full(format!(
                    "{} media are kept at most; delete one first",
                    self.limits.max_count
                )));
            }
            if total + bytes.len() > self.limits.max_total {
                return Err(MediaError::Full(format!(
                    "{} bytes of media are kept at most; {total} are",
                    self.limits.max_total
                )));
            }
            idx.insert(m.id.clone(), m.clone());
        }
        let kept = serde_json::to_vec(&m)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
            .and_then(|v| {
                self.data.insert(m.id.as_bytes(), bytes)?;
                self.meta.insert(m.id.as_bytes(), v)?;
                Ok(())
            });
        if let Err(e) = kept {
            self.lock().remove(&m.id);
            return Err(e.into());
        }
        Ok(m)
    }

    /// The bytes of `id`.
    pub fn bytes(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.data.get(id.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Forgets `id`; whether it was there.
    pub fn remove(&self, id: &str) -> Result<bool, StoreError> {
        let was = self.lock().remove(id).is_some();
        self.meta.remove(id.as_bytes())?;
        self.data.remove(id.as_bytes())?;
        Ok(was)
    }
}

/// The channel of a request that may carry media: `Some(Mms)` with media (channel `auto` or
/// `mms`; `auto` tries RCS file transfer first when chat is on), `None` without, or with
/// channel `rcs` (the text channel choice goes on); media with `sms`/`lms`, `mms` without
/// media and a subject over [`MAX_SUBJECT`] are refused.
pub fn channel(
    policy: ChannelPolicy,
    media: Option<&str>,
    text: &str,
) -> Result<Option<Channel>, UmsError> {
    match (media, policy) {
        (Some(_), ChannelPolicy::Auto | ChannelPolicy::Mms) => {
            if text.chars().count() > MAX_SUBJECT {
                return Err(invalid(
                    "subject_too_long",
                    format!("an MMS's text is its subject: at most {MAX_SUBJECT} characters"),
                ));
            }
            Ok(Some(Channel::Mms))
        }
        // RCS only: a file transfer over HTTP, no MMS.
        (Some(_), ChannelPolicy::Rcs) => Ok(None),
        (Some(_), _) => Err(invalid(
            "media_needs_mms",
            "a message with media goes as RCS file transfer or MMS: channel auto, rcs or mms",
        )),
        (None, ChannelPolicy::Mms) => Err(invalid(
            "no_media",
            "channel mms sends media: give \"media\", an id from POST /ums/v1/media",
        )),
        (None, _) => Ok(None),
    }
}

/// The URL a phone fetches media `id` from.
pub fn media_url(ums: &Ums, id: &str) -> String {
    format!("http://{}/ums/v1/media/{id}", ums.local)
}

/// Why a recipient's notification cannot be submitted (the recipient fails with it).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The media was deleted after the send was taken.
    #[error("media {0} is gone")]
    MediaGone(String),
    #[error("the MMS notification does not encode: {0}")]
    Encode(#[from] crate::mms::MmsError),
}

/// The submit_sm of each SMS part of `sub`'s notification, the receipt asked for on the last.
pub(super) fn submit_sms(ums: &Ums, sub: &Submission) -> Result<Vec<Sm>, NotifyError> {
    let id = sub.media.as_deref().unwrap_or_default();
    let meta = ums
        .media
        .meta(id)
        .ok_or_else(|| NotifyError::MediaGone(id.to_string()))?;
    let sender = &ums.settings.sender;
    let n = Notification {
        transaction_id: format!("{}-{}", sub.key.message, sub.key.index),
        version: crate::mms::pdu::VERSION_1_2,
        from: Some(format!("{sender}/TYPE=PLMN")),
        subject: (!sub.text.is_empty()).then(|| sub.text.clone()),
        class: MessageClass::Personal,
        size: meta.size as u64,
        expiry: Expiry::Relative(EXPIRY_SECS),
        content_location: format!(
            "{}?m={}&i={}",
            media_url(ums, id),
            sub.key.message,
            sub.key.index
        ),
    };
    let tid: u8 = rand::random();
    let push = n
        .encode()
        .and_then(|pdu| Push::mms(tid, pdu).encode())
        .and_then(|p| bearer::short_messages(&p, rand::random()))?;
    let last = push.len().saturating_sub(1);
    Ok(push
        .into_iter()
        .enumerate()
        .map(|(i, short_message)| Sm {
            service_type: String::new(),
            source: Address {
                ton: 0,
                npi: 1,
                addr: sender.trim_start_matches('+').to_string(),
            },
            dest: Address::international(sub.to.trim_start_matches('+')),
            params: SmParams {
                esm_class: EsmClass(EsmClass::UDHI),
                registered_delivery: RegisteredDelivery(u8::from(i == last)),
                data_coding: DataCoding(crate::sms::user_data::DCS_OCTET),
                short_message,
                ..SmParams::default()
            },
            tlvs: Vec::new(),
        })
        .collect())
}

/// Reads and drops what comes of `body`, at most `max` bytes and for at most `wait`, so a
/// client still sending a refused upload reads the refusal, not a broken pipe.
async fn drain(mut body: TimedBody, max: u64) {
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        let mut n = 0u64;
        while n < max {
            match body.frame().await {
                Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                _ => break,
            }
        }
    })
    .await;
}

fn media_view(ums: &Ums, m: &MediaMeta) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "url": media_url(ums, &m.id),
        "content_type": m.content_type,
        "size": m.size,
    })
}

/// `POST /ums/v1/media` (the business token checked): the body is the media, its
/// Content-Type its type. 201 once flushed; 413 past `max_media_size`; 429 past the store's
/// bounds.
pub(super) async fn upload(ums: &Arc<Ums>, req: Request<TimedBody>) -> Response<Full<Bytes>> {
    let max = ums.settings.media.max_size;
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("")
        .to_string();
    if content_type.is_empty()
        || content_type.len() > MAX_CONTENT_TYPE
        || !content_type.contains('/')
        || content_type.bytes().any(|b| b.is_ascii_control())
    {
        return error(
            400,
            "bad_content_type",
            "send the media's type as Content-Type (image/jpeg, say)",
        );
    }
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = |n: String| {
        error(
            413,
            "media_too_large",
            format!("the media is {n} bytes; at most {max} ([ums] max_media_size)"),
        )
    };
    if let Some(l) = declared.filter(|l| *l > max as u64) {
        drain(req.into_body(), l.min(MAX_DRAIN)).await;
        return too_large(l.to_string());
    }
    let bytes = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if crate::http_server::is_body_timeout(&*e) => {
            return error(408, "timeout", "the body did not arrive in time")
        }
        Err(_) => return too_large(format!("more than {max}")),
    };
    if bytes.is_empty() {
        return error(400, "no_media", "the body is the media: it is empty");
    }
    let m = match ums.media.put(&content_type, &bytes) {
        Ok(m) => m,
        Err(MediaError::Full(d)) => return error(429, "too_much_media", d),
        Err(MediaError::Store(e)) => return error(500, "store", e),
    };
    if let Err(e) = ums.store.durable().await {
        return error(500, "store", e);
    }
    json(201, &media_view(ums, &m))
}

/// `DELETE /ums/v1/media/{id}` (the business token checked): 204, or 404.
pub(super) async fn delete(ums: &Arc<Ums>, id: &str) -> Response<Full<Bytes>> {
    match ums.media.remove(id) {
        Ok(true) => {
            if let Err(e) = ums.store.durable().await {
                return error(500, "store", e);
            }
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(false) => not_found(id),
        Err(e) => error(500, "store", e),
    }
}

fn not_found(id: &str) -> Response<Full<Bytes>> {
    error(
        404,
        "no_such_media",
        format!("no media '{}'", id.chars().take(64).collect::<String>()),
    )
}

/// `GET /ums/v1/media/{id}` without a token: the bytes with their type. A query `m=MSG&i=N`
/// naming a recipient of an MMS of this media posts `mms_retrieved` to the webhook.
pub(super) fn fetch(ums: &Arc<Ums>, id: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let Some(meta) = ums.media.meta(id) else {
        return not_found(id);
    };
    let bytes = match ums.media.bytes(id) {
        Ok(Some(b)) => b,
        Ok(None) => return not_found(id),
        Err(e) => return error(500, "store", e),
    };
    if let Some(to) = query.and_then(|q| retrieved_by(ums, id, q)) {
        let message_id = query.and_then(|q| param(q, "m")).unwrap_or_default();
        ums.trace.note(ums.local, || {
            format!("MMS {message_id}: {to} fetched media {id}")
        });
        ums.post(serde_json::json!({
            "type": "mms_retrieved",
            "message_id": message_id,
            "to": to,
        }));
    }
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    if let Ok(v) = hyper::header::HeaderValue::from_str(&meta.content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name))
        .map(|(_, v)| v)
}

/// The recipient a fetch's query names, when it is an MMS recipient of media `id`.
fn retrieved_by(ums: &Ums, id: &str, query: &str) -> Option<String> {
    let m = param(query, "m")?;
    let i: usize = param(query, "i")?.parse().ok()?;
    let core = ums.lock();
    let msg = core.message(m).ok()?;
    let r = msg.recipients.get(i)?;
    (msg.media.as_deref() == Some(id) && r.channel == Channel::Mms).then(|| r.to.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_makes_the_channel_mms_or_rcs_and_conflicting_channels_are_refused() {
        let m = Some("ab");
        assert_eq!(
            channel(ChannelPolicy::Auto, m, "hi"),
            Ok(Some(Channel::Mms))
        );
        assert_eq!(channel(ChannelPolicy::Mms, m, ""), Ok(Some(Channel::Mms)));
        assert_eq!(channel(ChannelPolicy::Auto, None, "hi"), Ok(None));
        for p in [ChannelPolicy::Sms, ChannelPolicy::Lms] {
            assert_eq!(channel(p, m, "hi").unwrap_err().code(), "media_needs_mms");
        }
        // RCS only: a file transfer, no MMS.
        assert_eq!(channel(ChannelPolicy::Rcs, m, "hi"), Ok(None));
        assert_eq!(
            channel(ChannelPolicy::Mms, None, "hi").unwrap_err().code(),
            "no_media"
        );
        let long = "a".repeat(MAX_SUBJECT + 1);
        assert_eq!(
            channel(ChannelPolicy::Auto, m, &long).unwrap_err().status(),
            400
        );
    }

    /// The core with media: `mms` as the channel, the media on the submission, the text as
    /// its subject (none needed), and the receipt's `delivered` saying what was delivered.
    #[test]
    fn an_mms_recipient_is_submitted_with_its_media_and_delivered_as_a_notification() {
        use super::super::core::{Limits, SendRequest, Status, UmsCore};
        let mut c = UmsCore::new(Limits {
            max_recipients: 3,
            max_templates: 2,
            max_messages: 4,
            max_pending: 4,
        });
        let req = |text: Option<&str>, channel: Option<&str>| SendRequest {
            recipients: vec!["+15550002".into()],
            text: text.map(String::from),
            media: Some("ab".into()),
            channel: channel.map(String::from),
            ..SendRequest::default()
        };
        let (m, _) = c.submit(1, "m1".into(), &req(None, None)).unwrap();
        assert_eq!((m.media.as_deref(), m.text.as_str()), (Some("ab"), ""));
        assert_eq!(m.recipients[0].channel, Channel::Mms);
        let s = c.next_submission().unwrap();
        assert_eq!((s.media.as_deref(), s.text.as_str()), (Some("ab"), ""));
        c.submitted(2, &s.key, Ok("77".into()));
        c.receipt(3, "77", true, String::new());
        let r = &c.message("m1").unwrap().recipients[0];
        assert_eq!(
            (r.status, r.detail.as_str()),
            (Status::Delivered, "notification delivered")
        );
        let (m, _) = c
            .submit(4, "m2".into(), &req(Some("Sale"), Some("mms")))
            .unwrap();
        assert_eq!(m.text, "Sale");
        let e = c
            .submit(5, "m3".into(), &req(Some("Sale"), Some("sms")))
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "media_needs_mms"));
    }

    #[test]
    fn the_store_keeps_media_within_its_bounds() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = MediaStore::open(
            &db,
            MediaLimits {
                max_size: 10,
                max_count: 2,
                max_total: 15,
            },
        )
        .unwrap();
        let a = s.put("image/png", b"0123456789").unwrap();
        assert_eq!(a.id.len(), 32);
        assert_eq!(s.bytes(&a.id).unwrap().unwrap(), b"0123456789");
        assert!(matches!(
            s.put("image/png", b"012345"),
            Err(MediaError::Full(_))
        ));
        let b = s.put("text/plain", b"01234").unwrap();
        assert_ne!(a.id, b.id);
        assert!(matches!(
            s.put("text/plain", b"0"),
            Err(MediaError::Full(_))
        ));
        assert!(s.remove(&a.id).unwrap());
        assert!(!s.remove(&a.id).unwrap());
        assert!(s.bytes(&a.id).unwrap().is_none());
        drop(s);
        let again = MediaStore::open(
            &db,
            MediaLimits {
                max_size: 10,
                max_count: 2,
                max_total: 15,
            },
        )
        .unwrap();
        assert_eq!(again.meta(&b.id), Some(b));
        assert_eq!(param("m=m5&i=0", "i"), Some("0"));
    }
}
