//! `ContentError`: why a content-server request failed, and the HTTP status and JSON body
//! (`{"error", "detail"}`) it becomes (RFC 9110 §15; 507 of RFC 4918 §11.5 for a full disk).

use serde_json::{json, Value};

/// Why a request failed; [`super::http`] turns each into a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// 400: malformed request (bad multipart, bad Content-Range, bad tid…).
    #[error("{0}")]
    BadRequest(String),
    /// 401 with a Digest challenge: no credentials, or wrong ones (the same for an unknown
    /// user and a wrong password). `stale`: only the nonce was old.
    #[error("authentication required")]
    Unauthorized {
        /// RFC 7616 §3.3 stale.
        stale: bool,
    },
    /// 401 for the grant API (no or wrong bearer secret).
    #[error("{0}")]
    BadSecret(String),
    /// 403: not the uploader nor a recipient of that file, or no such file (one answer for
    /// both, so a download reveals nothing of files not shared with the asker).
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// 409: an upload of that tid is under way, or it is not complete yet.
    #[error("{0}")]
    Conflict(String),
    /// 413: over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a body of a type this resource does not take.
    #[error("{0}")]
    UnsupportedType(String),
    /// 416: a range the file does not have (`Content-Range: bytes */LEN` goes with it).
    #[error("{detail}")]
    RangeNotSatisfiable {
        /// Why.
        detail: String,
        /// The length the range was held to.
        len: u64,
    },
    /// 503 with Retry-After: too many uploads pending, or the HSS cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// 507: no room (the disk, or `[content] max_files`); nothing half-written stays.
    #[error("{0}")]
    InsufficientStorage(String),
    /// 500: the index could not be written.
    #[error("{0}")]
    Internal(String),
}

impl ContentError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ContentError::BadRequest(_) => 400,
            ContentError::Unauthorized { .. } | ContentError::BadSecret(_) => 401,
            ContentError::Forbidden(_) => 403,
            ContentError::NotFound(_) => 404,
            ContentError::MethodNotAllowed(_) => 405,
            ContentError::Timeout(_) => 408,
            ContentError::Conflict(_) => 409,
            ContentError::TooLarge(_) => 413,
            ContentError::UnsupportedType(_) => 415,
            ContentError::RangeNotSatisfiable { .. } => 416,
            ContentError::Unavailable(_) => 503,
            ContentError::InsufficientStorage(_) => 507,
            ContentError::Internal(_) => 500,
        }
    }

    /// `{"error": "...", "detail": "..."}`.
    pub fn body(&self) -> Value {
        let error = match self {
            ContentError::BadRequest(_) => "bad_request",
            ContentError::Unauthorized { .. } | ContentError::BadSecret(_) => "unauthorized",
            ContentError::Forbidden(_) => "forbidden",
            ContentError::NotFound(_) => "not_found",
            ContentError::MethodNotAllowed(_) => "method_not_allowed",
            ContentError::Timeout(_) => "request_timeout",
            ContentError::Conflict(_) => "conflict",
            ContentError::TooLarge(_) => "payload_too_large",
            ContentError::UnsupportedType(_) => "unsupported_media_type",
            ContentError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ContentError::Unavailable(_) => "service_unavailable",
            ContentError::InsufficientStorage(_) => "insufficient_storage",
            ContentError::Internal(_) => "internal_error",
        };
        let detail = match self {
            ContentError::Unauthorized { .. } => {
                "authenticate with HTTP Digest (your IMS private identity and password)".into()
            }
            other => other.to_string(),
        };
        json!({ "error": error, "detail": detail })
    }
}
