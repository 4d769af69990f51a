//! Plain RTP on the IMS side of the bridge (RFC 3550 §5.1), socket-free: reading a datagram
//! into its header fields and payload, writing one back, telling RTCP apart on a muxed port
//! (RFC 5761 §4), and extending 16-bit sequence numbers (RFC 3550 appendix A.1) for the SRTP
//! side, whose rollover counter must be right (RFC 3711 §3.3.1).

/// The RTP header fields the bridge relays; CSRCs, header extensions and padding are dropped
/// (the IMS side negotiated none of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFields {
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// What one datagram on the plain port is.
#[derive(Debug, PartialEq, Eq)]
pub enum PlainPacket<'a> {
    Rtp(RtpFields, &'a [u8]),
    /// RTCP (payload type 200–204 range, RFC 5761 §4); not relayed.
    Rtcp,
    /// Not RTP version 2, or truncated.
    Invalid,
}

/// Reads one datagram received on the plain RTP port.
pub fn read(buf: &[u8]) -> PlainPacket<'_> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return PlainPacket::Invalid;
    }
    // RFC 5761 §4: RTCP packet types 192–223 fall where marker+PT would be 64–95.
    if (192..=223).contains(&buf[1]) {
        return PlainPacket::Rtcp;
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let cc = usize::from(buf[0] & 0x0f);
    let mut start = 12 + 4 * cc;
    if extension {
        let Some(ext) = buf.get(start..start + 4) else {
            return PlainPacket::Invalid;
        };
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = buf.len();
    if padding {
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || pad > end {
            return PlainPacket::Invalid;
        }
        end -= pad;
    }
    if start > end {
        return PlainPacket::Invalid;
    }
    let fields = RtpFields {
        marker: buf[1] & 0x80 != 0,
        pt: buf[1] & 0x7f,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
    };
    PlainPacket::Rtp(fields, &buf[start..end])
}

/// Writes a minimal RTP packet (no CSRC, no extension, no padding) into `out`.
pub fn write(f: &RtpFields, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(0x80);
    out.push((u8::from(f.marker) << 7) | (f.pt & 0x7f));
    out.extend_from_slice(&f.seq.to_be_bytes());
    out.extend_from_slice(&f.timestamp.to_be_bytes());
    out.extend_from_slice(&f.ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Extends 16-bit sequence numbers to 64 bits across wrap-arounds: the value nearest to the
/// highest seen so far. The first one is taken as is (ROC 0, RFC 3711 §3.3.1).
#[derive(Debug, Default)]
pub struct SeqExtender {
    max: Option<u64>,
}

impl SeqExtender {
    pub fn extend(&mut self, seq: u16) -> u64 {
        let Some(max) = self.max else {
            self.max = Some(u64::from(seq));
            return u64::from(seq);
        };
        // The signed distance from the highest seen, as RFC 3711 §3.3.1 guesses the index.
        let delta = i64::from(seq.wrapping_sub(max as u16) as i16);
        match u64::try_from(max as i64 + delta) {
            Ok(v) => {
                self.max = Some(v.max(max));
                v
            }
            // Before the first packet of ROC 0: a late packet, not a wrap backwards.
            Err(_) => u64::from(seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> RtpFields {
        RtpFields {
            marker: true,
            pt: 8,
            seq: 0xfffe,
            timestamp: 0x1234_5678,
            ssrc: 0xdead_beef,
        }
    }

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        write(&fields(), b"hello", &mut out);
        assert_eq!(out.len(), 12 + 5);
        assert_eq!(&out[..2], &[0x80, 0x88]);
        assert_eq!(read(&out), PlainPacket::Rtp(fields(), b"hello"));
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut p = vec![0xb1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // extension, one word
        p.extend_from_slice(b"abc");
        p.extend_from_slice(&[0, 2]); // two bytes of padding
        match read(&p) {
            PlainPacket::Rtp(f, payload) => {
                assert_eq!((f.pt, f.seq, f.timestamp, f.ssrc), (0, 1, 2, 3));
                assert_eq!(payload, b"abc");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rtcp_and_garbage() {
        // A receiver report (PT 201).
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(read(&rr), PlainPacket::Rtcp);
        assert_eq!(read(&[0x80, 0]), PlainPacket::Invalid);
        assert_eq!(read(&[0x40; 20]), PlainPacket::Invalid);
        // Extension length past the end, padding longer than the packet.
        let mut ext = vec![
            0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0xff, 0xff,
        ];
        assert_eq!(read(&ext), PlainPacket::Invalid);
        ext.truncate(13);
        assert_eq!(read(&ext), PlainPacket::Invalid);
        let pad = [0xa0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xff];
        assert_eq!(read(&pad), PlainPacket::Invalid);
        let zero_pad = [0xa0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0];
        assert_eq!(read(&zero_pad), PlainPacket::Invalid);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ 0x80).collect();
            let _ = read(&junk);
        }
    }

    #[test]
    fn sequence_numbers_extend_across_wrap_and_reorder() {
        let mut x = SeqExtender::default();
        assert_eq!(x.extend(65534), 65534);
        assert_eq!(x.extend(65535), 65535);
        assert_eq!(x.extend(0), 65536);
        assert_eq!(x.extend(65535), 65535, "late packet from before the wrap");
        assert_eq!(x.extend(1), 65537);
        let mut y = SeqExtender::default();
        assert_eq!(y.extend(3), 3);
        assert_eq!(
            y.extend(65535),
            65535,
            "no negative ROC before the first wrap"
        );
        assert_eq!(y.extend(4), 4);
    }
}
