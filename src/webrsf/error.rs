//! `WebError`: why a WebRSF request failed, and the HTTP status and JSON error body
//! (`{"error", "detail"}`) each failure becomes on the paper's REST interface (seed 000 §3);
//! status codes as RFC 9110 §15 names them, 429 with Retry-After as in RFC 6585 §4.

use serde_json::{json, Value};

/// Why a gateway operation failed; [`super::http`] turns each into a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 401: no token, a wrong token, or the IMS refused the credentials.
    Unauthorized(String),
    /// 403: a valid token of another user.
    Forbidden(String),
    /// 404: no such user, instance or message.
    NotFound(String),
    /// 409: the instance is not in a state that allows this.
    Conflict(String),
    /// 408: the body did not arrive within `[http] body_timeout_ms`.
    RequestTimeout(String),
    /// 413: body over the limit.
    TooLarge(String),
    /// 429: too many channels.
    TooMany(String),
    /// 429: too many uploads under way ([`super::MAX_UPLOADS_PER_USER`]).
    Busy(String),
    /// 429 with Retry-After (seconds): too many failed logins for this user or address.
    RateLimited(String, u64),
    /// 503: the gateway is full (`[webrsf] max_users`).
    Unavailable(String),
    /// 504: the IMS core did not answer.
    Timeout(String),
    /// 501: the operation is designed but the IMS side cannot do it yet.
    NotImplemented(String),
    /// 502: a node behind the gateway (T-IM's history endpoint) failed or refused it.
    BadGateway(String),
}

impl WebError {
    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            WebError::BadRequest(_) => 400,
            WebError::Unauthorized(_) => 401,
            WebError::Forbidden(_) => 403,
            WebError::NotFound(_) => 404,
            WebError::Conflict(_) => 409,
            WebError::RequestTimeout(_) => 408,
            WebError::TooLarge(_) => 413,
            WebError::TooMany(_) | WebError::Busy(_) | WebError::RateLimited(..) => 429,
            WebError::Unavailable(_) => 503,
            WebError::Timeout(_) => 504,
            WebError::BadGateway(_) => 502,
            WebError::NotImplemented(_) => 501,
        }
    }

    /// The JSON error body: `{"error": "...", "detail": "..."}`.
    pub fn body(&self) -> Value {
        let (error, detail) = match self {
            WebError::BadRequest(d) => ("bad_request", d),
            WebError::Unauthorized(d) => ("unauthorized", d),
            WebError::Forbidden(d) => ("forbidden", d),
            WebError::NotFound(d) => ("not_found", d),
            WebError::Conflict(d) => ("conflict", d),
            WebError::RequestTimeout(d) => ("request_timeout", d),
            WebError::TooLarge(d) => ("payload_too_large", d),
            WebError::TooMany(d) => ("too_many_channels", d),
            WebError::Busy(d) => ("too_many_uploads", d),
            WebError::RateLimited(d, _) => ("too_many_attempts", d),
            WebError::Unavailable(d) => ("service_unavailable", d),
            WebError::Timeout(d) => ("ims_timeout", d),
            WebError::BadGateway(d) => ("bad_gateway", d),
            WebError::NotImplemented(d) => ("not_implemented", d),
        };
        json!({ "error": error, "detail": detail })
    }
}
