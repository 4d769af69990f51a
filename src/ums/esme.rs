//! The UMS as an SMPP 3.4 application (ESME) of the SMS centre: one transceiver session over
//! TCP (§2.2, bind_transceiver §4.1.5), submit_sm for each recipient the core hands out with
//! up to `window` outstanding (§2.7 windowing), deliver_sm in — receipts (esm_class 0x04,
//! Appendix B) and phones' SMS to the gateway's short code (MO) — and enquire_link when the
//! line is quiet (§4.11). When the centre goes away the session is opened again with backoff
//! (0.2 s doubling to 10 s); what was in flight is submitted again. Every wait is bounded:
//! connect 5 s, bind and each response 10 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::core::Key;
use super::Ums;
use crate::http_server::stopped;
use crate::smpp::{
    find_tlv, frame, Address, Bind, Body, CommandStatus, DataCoding, DeliveryReceipt, Framing,
    MessageIdResp, MessageState, Pdu, RegisteredDelivery, Sm, SmParams, SmppError, Tlv,
    DEFAULT_MAX_PDU, INTERFACE_VERSION, MAX_SHORT_MESSAGE,
};
use crate::sms::gsm7;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Quiet this long, an enquire_link goes out.
const ENQUIRE_AFTER: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to the SMSC: {0}")]
    Connect(std::io::Error),
    #[error("the SMSC did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("the SMSC refused the bind: {0}")]
    BindRefused(CommandStatus),
    #[error("the SMSC closed the session")]
    Closed,
    #[error("SMPP: {0}")]
    Codec(#[from] SmppError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Keeps a session to the centre open until `shut`.
pub(super) async fn run(ums: Arc<Ums>, mut shut: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut bound = false;
        let end = tokio::select! {
            r = session(&ums, &mut bound) => r,
            _ = stopped(&mut shut) => Ok(()),
        };
        ums.set_bound(false);
        ums.lock().connection_lost();
        if *shut.borrow() {
            return;
        }
        if let Err(e) = end {
            crate::warn_limited!("ums.smpp", smsc = %ums.settings.smsc, error = %e, "UMS: SMPP session to the SMSC ended; reconnecting");
        }
        if bound {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut shut) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// What a request awaits.
enum Waiting {
    /// A submit_sm of this recipient; true for its last (or only) SMS part.
    Submit(Key, bool),
    Enquire,
    Bind,
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    seq: u32,
}

impl Conn {
    async fn send(&mut self, pdu: &Pdu) -> Result<(), SessionError> {
        let bytes = pdu.encode()?;
        tokio::time::timeout(RESPONSE_TIMEOUT, self.stream.write_all(&bytes))
            .await
            .map_err(|_| SessionError::Timeout("write"))??;
        Ok(())
    }

    async fn request(&mut self, body: Body) -> Result<u32, SessionError> {
        self.seq = if self.seq >= 0x7FFF_FFFF {
            1
        } else {
            self.seq + 1
        };
        let seq = self.seq;
        self.send(&Pdu::new(seq, body)).await?;
        Ok(seq)
    }

    /// The PDUs whole in the buffer.
    fn frames(&mut self) -> Result<Vec<Pdu>, SessionError> {
        let mut out = Vec::new();
        loop {
            match frame(&self.buf, DEFAULT_MAX_PDU) {
                Framing::Complete(n) => {
                    let b = self.buf.split_to(n);
                    match Pdu::decode(&b) {
                        Ok(p) => out.push(p),
                        Err(e) => {
                            crate::warn_limited!("ums.pdu", error = %e, "UMS: a PDU from the SMSC does not decode; skipped");
                        }
                    }
                }
                Framing::Incomplete => return Ok(out),
                Framing::BadLength(h) => {
                    return Err(SessionError::Codec(SmppError::BadLength {
                        length: h.command_length,
                        actual: self.buf.len(),
                        sequence: h.sequence_number,
                    }))
                }
            }
        }
    }
}

/// One session: connect, bind, then submit and receive until it breaks.
async fn session(ums: &Arc<Ums>, bound: &mut bool) -> Result<(), SessionError> {
    let s = &ums.settings;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(s.smsc))
        .await
        .map_err(|_| SessionError::Timeout("connect"))?
        .map_err(SessionError::Connect)?;
    let _ = stream.set_nodelay(true);
    if let Ok(local) = stream.local_addr() {
        ums.trace.name_peer(local, "UMS");
    }
    let mut c = Conn {
        stream,
        buf: BytesMut::with_capacity(4096),
        seq: 0,
    };
    let mut waiting: HashMap<u32, (Waiting, Instant)> = HashMap::new();
    let bind = c
        .request(Body::BindTransceiver(Bind {
            system_id: s.system_id.clone(),
            password: s.password.clone(),
            interface_version: INTERFACE_VERSION,
            ..Bind::default()
        }))
        .await?;
    waiting.insert(bind, (Waiting::Bind, Instant::now()));
    let mut submits = 0usize;
    let mut last_rx = Instant::now();
    loop {
        if *bound {
            while submits < s.window {
                let Some(sub) = ums.lock().next_submission() else {
                    break;
                };
                // An MMS notification may take several SMS, each a submit_sm.
                let sms = match sub.media {
                    Some(_) => super::mms::submit_sms(ums, &sub).map_err(|e| e.to_string()),
                    None => Ok(vec![submit_sm(&s.sender, &sub.to, &sub.text)]),
                };
                let sms = match sms {
                    Ok(sms) => sms,
                    Err(why) => {
                        ums.submitted(&sub.key, Err((false, why)));
                        continue;
                    }
                };
                let n = sms.len();
                for (i, sm) in sms.into_iter().enumerate() {
                    let seq = c.request(Body::SubmitSm(sm)).await?;
                    let w = Waiting::Submit(sub.key.clone(), i + 1 == n);
                    waiting.insert(seq, (w, Instant::now()));
                    submits += 1;
                }
            }
        }
        let oldest = waiting.values().map(|(_, at)| *at).min();
        let tick = match oldest {
            Some(at) => (at + RESPONSE_TIMEOUT).min(last_rx + ENQUIRE_AFTER),
            None => last_rx + ENQUIRE_AFTER,
        };
        tokio::select! {
            r = c.stream.read_buf(&mut c.buf) => {
                if r? == 0 {
                    return Err(SessionError::Closed);
                }
                last_rx = Instant::now();
                for pdu in c.frames()? {
                    match waiting.remove(&pdu.sequence).filter(|_| is_response(&pdu)) {
                        Some((Waiting::Bind, _)) => {
                            if pdu.status != CommandStatus::Ok {
                                return Err(SessionError::BindRefused(pdu.status));
                            }
                            *bound = true;
                            ums.set_bound(true);
                        }
                        Some((Waiting::Submit(key, last), _)) => {
                            submits = submits.saturating_sub(1);
                            // An earlier part: only its failure counts (the last part's
                            // id is the one its receipt names).
                            let r = submit_result(&pdu);
                            if last || r.is_err() {
                                ums.submitted(&key, r);
                            }
                        }
                        Some((Waiting::Enquire, _)) => {}
                        None => incoming(ums, &mut c, pdu).await?,
                    }
                }
            }
            _ = ums.wake.notified() => {}
            _ = tokio::time::sleep_until(tick) => {
                let now = Instant::now();
                if waiting.values().any(|(_, at)| now >= *at + RESPONSE_TIMEOUT) {
                    return Err(SessionError::Timeout("no response"));
                }
                if now >= last_rx + ENQUIRE_AFTER
                    && !waiting.values().any(|(w, _)| matches!(w, Waiting::Enquire))
                {
                    let seq = c.request(Body::EnquireLink).await?;
                    waiting.insert(seq, (Waiting::Enquire, now));
                }
            }
        }
    }
}

fn is_response(p: &Pdu) -> bool {
    p.command_id().is_response()
}

/// submit_sm_resp (or a generic_nack) as the core takes it.
fn submit_result(pdu: &Pdu) -> Result<String, (bool, String)> {
    match (&pdu.body, pdu.status) {
        (Body::SubmitSmResp(MessageIdResp { message_id, .. }), CommandStatus::Ok)
            if !message_id.is_empty() =>
        {
            Ok(message_id.clone())
        }
        (_, s @ (CommandStatus::Throttled | CommandStatus::MsgQFul)) => {
            Err((true, format!("the SMSC said {s}")))
        }
        (_, CommandStatus::Ok) => Err((false, "submit_sm_resp without a message id".into())),
        (_, s) => Err((false, format!("the SMSC refused it: {s}"))),
    }
}

/// A request from the centre: deliver_sm (a receipt or an MO message), enquire_link, unbind.
async fn incoming(ums: &Arc<Ums>, c: &mut Conn, pdu: Pdu) -> Result<(), SessionError> {
    match &pdu.body {
        Body::DeliverSm(sm) => {
            if sm.params.esm_class.is_delivery_receipt() {
                receipt(ums, sm);
            } else {
                ums.mo(mo_of(sm));
            }
            let resp = Pdu {
                status: CommandStatus::Ok,
                sequence: pdu.sequence,
                body: Body::DeliverSmResp(MessageIdResp::default()),
            };
            c.send(&resp).await
        }
        Body::Unbind => {
            if let Some(r) = pdu.response(CommandStatus::Ok) {
                let _ = c.send(&r).await;
            }
            Err(SessionError::Closed)
        }
        _ => match pdu.response(CommandStatus::Ok) {
            // enquire_link and anything else that has a response.
            Some(r) if matches!(pdu.body, Body::EnquireLink) => c.send(&r).await,
            Some(r) => {
                let mut r = r;
                r.status = CommandStatus::InvCmdId;
                c.send(&r).await
            }
            None => Ok(()),
        },
    }
}

/// A receipt: its id (receipted_message_id, else `id:` of the text) and its state.
fn receipt(ums: &Arc<Ums>, sm: &Sm) {
    let text = DeliveryReceipt::parse(&sm.params.short_message).ok();
    let id = find_tlv(&sm.tlvs, |t| match t {
        Tlv::ReceiptedMessageId(id) => Some(id.clone()),
        _ => None,
    })
    .or_else(|| text.as_ref().map(|r| r.id.clone()));
    let stat = find_tlv(&sm.tlvs, |t| match t {
        Tlv::MessageStateTlv(s) => Some(MessageState::from_code(*s)),
        _ => None,
    })
    .or_else(|| text.as_ref().map(|r| r.stat));
    let (Some(id), Some(stat)) = (id, stat) else {
        crate::warn_limited!(
            "ums.receipt",
            "UMS: a receipt without an id or a state; ignored"
        );
        return;
    };
    if !stat.is_final() {
        return;
    }
    let err = text.map(|r| r.err).unwrap_or_default();
    let why = if stat == MessageState::Delivered {
        String::new()
    } else {
        format!("stat:{} err:{err}", stat.receipt_stat())
    };
    ums.receipt(&id, stat == MessageState::Delivered, why);
}

/// An MO message as the webhook gets it.
pub(super) struct Mo {
    pub from: String,
    pub to: String,
    pub text: String,
}

fn number(a: &Address) -> String {
    if a.ton == 1 && !a.addr.starts_with('+') {
        format!("+{}", a.addr)
    } else {
        a.addr.clone()
    }
}

fn mo_of(sm: &Sm) -> Mo {
    let payload = sm.payload();
    // A UDH (concatenated parts the centre did not join) is skipped.
    let body = if sm.params.esm_class.udhi() {
        let n = payload.first().map_or(0, |n| usize::from(*n) + 1);
        payload.get(n..).unwrap_or_default()
    } else {
        payload
    };
    Mo {
        from: number(&sm.source),
        to: number(&sm.dest),
        text: text_of(sm.params.data_coding.0, body),
    }
}

/// The text of a payload in `data_coding` (SMPP §5.2.19): GSM 7-bit one septet an octet,
/// UCS-2, else Latin-1.
fn text_of(dc: u8, b: &[u8]) -> String {
    match dc {
        0x00 | 0x01 => gsm7::decode(b),
        0x08 => {
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => b.iter().map(|c| char::from(*c)).collect(),
    }
}

/// The submit_sm for one recipient, a receipt asked for: GSM 7-bit (one septet an octet)
/// when the text fits the default alphabet, else UCS-2; in message_payload when it is longer
/// than short_message holds (the centre cuts it into concatenated parts: one id, one
/// receipt).
pub(super) fn submit_sm(sender: &str, to: &str, text: &str) -> Sm {
    let (dc, bytes) = match gsm7::encode(text) {
        Some(septets) => (0x00, septets),
        None => (
            0x08,
            text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
        ),
    };
    let (short, tlvs) = if bytes.len() <= MAX_SHORT_MESSAGE && crate::ums::core::fits_one_sms(text)
    {
        (bytes, Vec::new())
    } else {
        (Vec::new(), vec![Tlv::MessagePayload(bytes)])
    };
    Sm {
        service_type: String::new(),
        source: Address {
            ton: 0,
            npi: 1,
            addr: sender.trim_start_matches('+').to_string(),
        },
        dest: Address::international(to.trim_start_matches('+')),
        params: SmParams {
            registered_delivery: RegisteredDelivery(1),
            data_coding: DataCoding(dc),
            short_message: short,
            ..SmParams::default()
        },
        tlvs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_goes_in_short_message_a_long_one_in_message_payload() {
        let sm = submit_sm("4100", "+15550002", "Your code is 1234");
        assert_eq!(sm.params.short_message, b"Your code is 1234");
        assert_eq!(sm.params.data_coding.0, 0);
        assert_eq!(sm.dest, Address::international("15550002"));
        assert_eq!(sm.source.addr, "4100");
        assert_eq!(sm.params.registered_delivery.0, 1);
        let long = "a".repeat(300);
        let sm = submit_sm("4100", "+15550002", &long);
        assert!(sm.params.short_message.is_empty());
        assert_eq!(sm.payload(), long.as_bytes());
        let k = submit_sm("4100", "+15550002", "안녕");
        assert_eq!(k.params.data_coding.0, 8);
        assert_eq!(text_of(8, k.payload()), "안녕");
    }

    #[test]
    fn submit_sm_resp_statuses_become_sent_retry_or_failed() {
        let ok = Pdu::new(
            1,
            Body::SubmitSmResp(MessageIdResp {
                message_id: "9".into(),
                tlvs: vec![],
            }),
        );
        assert_eq!(submit_result(&ok), Ok("9".into()));
        let mut t = ok.clone();
        t.status = CommandStatus::Throttled;
        assert!(matches!(submit_result(&t), Err((true, _))));
        t.status = CommandStatus::InvDstAdr;
        assert!(matches!(submit_result(&t), Err((false, _))));
    }
}
