//! What the SMPP session core ([`super::session::Session`]) takes and gives: bind kinds
//! (SMPP 3.4 §2.2), the work it hands to its driver, the bytes it sends, why it closed, and
//! its limits.

use std::time::Duration;

use super::{DeliverError, SmppSettings, Submitted};
use crate::smpp::{Bind, BindResp, Body};

/// How an ESME bound (§2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// bind_transmitter: submits only.
    Transmitter,
    /// bind_receiver: receives deliver_sm only.
    Receiver,
    /// bind_transceiver: both.
    Transceiver,
}

impl BindKind {
    /// May submit (submit_sm, data_sm, submit_multi, query/cancel/replace).
    pub fn transmits(self) -> bool {
        self != BindKind::Receiver
    }

    /// May be sent deliver_sm.
    pub fn receives(self) -> bool {
        self != BindKind::Transmitter
    }

    /// As in the bind command's name.
    pub fn name(self) -> &'static str {
        match self {
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
            BindKind::Transceiver => "transceiver",
        }
    }

    pub(super) fn response(self, resp: BindResp) -> Body {
        match self {
            BindKind::Transmitter => Body::BindTransmitterResp(resp),
            BindKind::Receiver => Body::BindReceiverResp(resp),
            BindKind::Transceiver => Body::BindTransceiverResp(resp),
        }
    }
}

/// The command a submission came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitCommand {
    /// submit_sm (§4.4).
    SubmitSm,
    /// data_sm (§4.7).
    DataSm,
    /// submit_multi (§4.5): one message per SME destination.
    SubmitMulti,
}

/// Why a session closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The ESME sent unbind.
    Unbound,
    /// We sent unbind (shutdown) and got unbind_resp, or waited for it in vain.
    Shutdown,
    /// No successful bind within bind_timeout.
    BindTimeout,
    /// No PDU within idle_timeout.
    Idle,
    /// No enquire_link_resp within response_timeout.
    NoLinkResponse,
    /// command_length out of range: the stream cannot be re-synchronised.
    BadFraming,
    /// The driver lost the socket (reset, EOF, blocked write).
    Transport,
}

/// Work for the driver.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A bind to authorise; answer with [`Session::bind_answer`] (`sequence` given back).
    Bind {
        /// The bind's sequence_number.
        sequence: u32,
        /// Its kind.
        kind: BindKind,
        /// Its parameters (the password among them: never log this).
        bind: Bind,
    },
    /// Messages for the service centre; answer with [`Session::submitted`], one result per
    /// message in the same order.
    Submit {
        /// Names the submission in [`Session::submitted`].
        token: u64,
        /// What came in.
        command: SubmitCommand,
        /// One per destination.
        messages: Vec<Submitted>,
    },
    /// The outcome of a [`Session::deliver`].
    Delivered {
        /// The deliver_sm's sequence_number that [`Session::deliver`] returned.
        sequence: u32,
        /// Ok on deliver_sm_resp ESME_ROK.
        result: Result<(), DeliverError>,
    },
    /// The session is over: send what [`Session::poll_transmit`] still has, then close.
    Closed(CloseReason),
}

/// Bytes to write, with the trace's one-line summary.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// One encoded PDU.
    pub bytes: Vec<u8>,
    /// `submit_sm_resp seq=3` (and the status when not ESME_ROK).
    pub summary: String,
}

/// The session's limits.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Outstanding deliver_sm, and submissions waiting for the SC.
    pub window: usize,
    /// See [`SmppSettings::bind_timeout`].
    pub bind_timeout: Duration,
    /// See [`SmppSettings::idle_timeout`].
    pub idle_timeout: Duration,
    /// See [`SmppSettings::response_timeout`].
    pub response_timeout: Duration,
}

impl From<&SmppSettings> for SessionConfig {
    fn from(s: &SmppSettings) -> Self {
        SessionConfig {
            window: s.window.max(1),
            bind_timeout: s.bind_timeout,
            idle_timeout: s.idle_timeout,
            response_timeout: s.response_timeout,
        }
    }
}
