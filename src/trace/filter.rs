//! Which recorded messages an export shows, as plain data; `crate::trace_view::filter` applies
//! it (it decodes SIP and Diameter, which the recorder does not). The rules (`rcslab trace
//! export --call-id/--user/--since`,
//! `GET /trace?call_id=&user=&since=`): one call, one user, the last seconds, and for `lab run`
//! only what ladders show.
//!
//! - **call-id**: SIP messages whose Call-ID is the one given (RFC 3261 §8.1.1.4), and the MSRP
//!   messages of the sessions their SDP set up (an `a=path` session id, RFC 4975 §8.1, found
//!   again in a SEND's To-Path / From-Path). Diameter carries no Call-ID and is left out.
//! - **user**: SIP messages naming the user in From, To, P-Asserted-Identity or the
//!   Request-URI (the user part, or the whole URI when one is given); Diameter requests whose
//!   User-Name or Public-Identity (TS 29.229 §6.3.2) is that user, with their answers (same
//!   Hop-by-Hop and End-to-End identifiers); the MSRP of their sessions as for call-id; and
//!   whatever goes to or from an address named after the user (`UE alice`, `Web alice`).
//! - **since**: messages recorded at or after a recorder time.
//!
//! Notes are kept when they fall within the time span of the kept messages.

use std::time::Duration;

/// Why the parameters of a filter do not read (the text goes back in the HTTP 400's detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `since` is not a finite, non-negative number of seconds (the value as given).
    #[error("since={0}: a number of seconds")]
    Since(String),
}

/// What an export keeps; the default keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// Only this SIP Call-ID (and its MSRP sessions).
    pub call_id: Option<String>,
    /// Only messages about this user (`alice`, or a whole URI `sip:alice@ims.lab`).
    pub user: Option<String>,
    /// Only messages recorded at or after this recorder time.
    pub since: Option<Duration>,
    /// Leave out what ladders leave out: watchdogs, capability exchanges, `100 Trying`.
    pub ladder_only: bool,
}

impl TraceFilter {
    /// The filter of `GET /trace?call_id=ID&user=USER&since=SECONDS` (values already
    /// percent-decoded): `since` is the last SECONDS before `now` (the recorder's time).
    pub fn from_params(
        call_id: Option<String>,
        user: Option<String>,
        since: Option<&str>,
        now: Duration,
    ) -> Result<TraceFilter, FilterError> {
        let since = match since {
            None => None,
            Some(s) => match s.trim().parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs >= 0.0 => {
                    Some(now.saturating_sub(Duration::from_secs_f64(secs.min(1e9))))
                }
                _ => return Err(FilterError::Since(s.to_string())),
            },
        };
        let nonempty =
            |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(TraceFilter {
            call_id: nonempty(call_id),
            user: nonempty(user),
            since,
            ladder_only: false,
        })
    }

    /// True when it keeps everything.
    pub fn is_empty(&self) -> bool {
        *self == TraceFilter::default()
    }
}
