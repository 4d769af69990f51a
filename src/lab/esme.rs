//! An application (ESME) of our own SMPP 3.4 codec ([`crate::smpp`]) over TCP, for the lab's
//! `smpp` step and `rcslab bench sms`: it binds as a transceiver, sends requests without
//! waiting for their answers (the caller keeps its own window), and answers
//! what the SMSC asks of it at once — deliver_sm (receipts, §4.6.1.1 and Appendix B) and
//! enquire_link (§4.11) — so that a slow reader never stalls the SMSC's window.
//!
//! One task reads and frames ([`crate::smpp::frame`]), one writes; the caller sees
//! [`EsmeEvent`]s in the order the PDUs came.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::smpp::{
    frame, Address, Bind, Body, CommandStatus, DeliveryReceipt, EsmClass, Framing, Pdu,
    RegisteredDelivery, Sm, SmParams, SmppError, DEFAULT_MAX_PDU, INTERFACE_VERSION,
};

/// What the application hears from the SMSC.
#[derive(Debug, Clone)]
pub enum EsmeEvent {
    /// The answer to one of our requests (bind_transceiver_resp, submit_sm_resp,
    /// unbind_resp, generic_nack), with submit_sm_resp's message_id.
    Response {
        sequence: u32,
        status: CommandStatus,
        message_id: Option<String>,
        at: Instant,
    },
    /// A deliver_sm, already answered with deliver_sm_resp: a delivery receipt (its text
    /// read), or a phone's message to one of our short codes.
    Deliver {
        receipt: Option<DeliveryReceipt>,
        source: String,
        short_message: Vec<u8>,
        at: Instant,
    },
    /// The SMSC closed the connection (or it broke).
    Closed,
}

/// Why the application could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EsmeError {
    /// No connection to the SMSC.
    #[error("SMPP connection: {0}")]
    Io(#[from] std::io::Error),
    /// A PDU that does not encode.
    #[error(transparent)]
    Codec(#[from] SmppError),
    /// The SMSC answered with an error status.
    #[error("the SMSC answered {0}")]
    Refused(CommandStatus),
    /// The connection ended.
    #[error("the SMSC closed the connection")]
    Closed,
    /// No answer in time.
    #[error("no {0} within {1:?}")]
    Timeout(&'static str, Duration),
}

/// A bound (or binding) application.
pub struct Esme {
    out: mpsc::UnboundedSender<Vec<u8>>,
    events: mpsc::UnboundedReceiver<EsmeEvent>,
    /// Events that came while [`Esme::call`] waited for its answer.
    held: VecDeque<EsmeEvent>,
    seq: u32,
    local: SocketAddr,
}

impl Esme {
    /// Connects to the SMSC's SMPP listener.
    pub async fn connect(addr: SocketAddr) -> Result<Esme, EsmeError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let (mut rd, mut wr) = stream.into_split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (ev_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = out_rx.recv().await {
                batch.clear();
                batch.extend_from_slice(&first);
                while batch.len() < 64 * 1024 {
                    match out_rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&batch).await.is_err() {
                    return;
                }
            }
        });
        let answers = out.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(8192);
            'read: loop {
                loop {
                    match frame(&buf, DEFAULT_MAX_PDU) {
                        Framing::Complete(n) => {
                            let bytes = buf.split_to(n);
                            let Ok(pdu) = Pdu::decode(&bytes) else {
                                break 'read;
                            };
                            if let Some(ev) = answer(&pdu, &answers) {
                                if ev_tx.send(ev).is_err() {
                                    break 'read;
                                }
                            }
                        }
                        Framing::Incomplete => break,
                        Framing::BadLength(_) => break 'read,
                    }
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = ev_tx.send(EsmeEvent::Closed);
        });
        Ok(Esme {
            out,
            events,
            held: VecDeque::new(),
            seq: 0,
            local,
        })
    }

    /// Our end of the connection (the lab names it in the ladder).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends a request with the next sequence number (from 1); returns that number.
    pub fn send(&mut self, body: Body) -> Result<u32, EsmeError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let bytes = Pdu::new(self.seq, body).encode()?;
        self.out.send(bytes).map_err(|_| EsmeError::Closed)?;
        Ok(self.seq)
    }

    /// The next event, if one comes within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Option<EsmeEvent> {
        if let Some(ev) = self.held.pop_front() {
            return Some(ev);
        }
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next event, waiting as long as it takes (`None` once the reader has stopped).
    pub async fn recv(&mut self) -> Option<EsmeEvent> {
        match self.held.pop_front() {
            Some(ev) => Some(ev),
            None => self.events.recv().await,
        }
    }

    /// Sends a request and waits for its answer (other events are kept for
    /// [`Esme::next_event`]); the answer's message_id, if it has one.
    pub async fn call(
        &mut self,
        body: Body,
        what: &'static str,
        wait: Duration,
    ) -> Result<Option<String>, EsmeError> {
        let seq = self.send(body)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| EsmeError::Timeout(what, wait))?;
            match ev {
                Some(EsmeEvent::Response {
                    sequence,
                    status,
                    message_id,
                    ..
                }) if sequence == seq => {
                    return if status.is_ok() {
                        Ok(message_id)
                    } else {
                        Err(EsmeError::Refused(status))
                    };
                }
                Some(EsmeEvent::Closed) | None => return Err(EsmeError::Closed),
                Some(other) => self.held.push_back(other),
            }
        }
    }

    /// bind_transceiver as `system_id` (SMPP 3.4 §4.1.5).
    pub async fn bind_transceiver(
        &mut self,
        system_id: &str,
        password: &str,
        wait: Duration,
    ) -> Result<(), EsmeError> {
        let bind = Bind {
            system_id: system_id.into(),
            password: password.into(),
            interface_version: INTERFACE_VERSION,
            ..Bind::default()
        };
        self.call(Body::BindTransceiver(bind), "bind_transceiver_resp", wait)
            .await
            .map(|_| ())
    }

    /// unbind (§4.2.1), waiting for unbind_resp.
    pub async fn unbind(&mut self, wait: Duration) -> Result<(), EsmeError> {
        self.call(Body::Unbind, "unbind_resp", wait)
            .await
            .map(|_| ())
    }
}

/// A submit_sm of `text` (GSM 7-bit, one octet a character, data_coding 0) from `source` to
/// the international number `to` (`+15550002` or `15550002`), asking for a receipt on the
/// final outcome when `receipt`.
pub fn submit_sm(source: &str, to: &str, text: &str, receipt: bool) -> Body {
    Body::SubmitSm(Sm {
        service_type: String::new(),
        source: Address {
            ton: 0,
            npi: 1,
            addr: source.into(),
        },
        dest: Address::international(to.trim_start_matches('+')),
        params: SmParams {
            registered_delivery: RegisteredDelivery(if receipt {
                RegisteredDelivery::ON_FINAL
            } else {
                RegisteredDelivery::NONE
            }),
            short_message: text.as_bytes().to_vec(),
            ..SmParams::default()
        },
        tlvs: Vec::new(),
    })
}

/// What the reader makes of one PDU: the SMSC's requests are answered here (through the
/// writer), everything else becomes an event.
fn answer(pdu: &Pdu, out: &mpsc::UnboundedSender<Vec<u8>>) -> Option<EsmeEvent> {
    let at = Instant::now();
    let reply = |p: &Pdu| {
        if let Some(r) = p.response(CommandStatus::Ok) {
            if let Ok(b) = r.encode() {
                let _ = out.send(b);
            }
        }
    };
    match &pdu.body {
        Body::DeliverSm(sm) => {
            reply(pdu);
            let receipt = (sm.params.esm_class.0 & EsmClass::DELIVERY_RECEIPT != 0)
                .then(|| DeliveryReceipt::parse(&sm.params.short_message).ok())
                .flatten();
            Some(EsmeEvent::Deliver {
                receipt,
                source: sm.source.addr.clone(),
                short_message: sm.params.short_message.clone(),
                at,
            })
        }
        Body::EnquireLink => {
            reply(pdu);
            None
        }
        Body::Unbind => {
            reply(pdu);
            Some(EsmeEvent::Closed)
        }
        body if pdu.command_id().is_response() => Some(EsmeEvent::Response {
            sequence: pdu.sequence,
            status: pdu.status,
            message_id: match body {
                Body::SubmitSmResp(r) | Body::DataSmResp(r) => Some(r.message_id.clone()),
                _ => None,
            },
            at,
        }),
        // Anything else the SMSC should not send to an ESME: answered generically.
        _ => {
            reply(pdu);
            None
        }
    }
}
