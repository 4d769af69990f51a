//! TP user data (TS 23.040 §9.2.3.24): the data coding scheme's alphabet (TS 23.038 §4), the
//! user data header with its information elements (concatenation, §9.2.3.24.1 and .8), and
//! the user data itself — GSM 7-bit packed after the header's fill bits, UCS-2 (UTF-16BE, as
//! phones send it), or 8-bit data — with the user data length counted in septets or octets
//! as the alphabet says.

use super::gsm7;
use super::SmsError;

/// TP-DCS: GSM 7-bit default alphabet, no class.
pub const DCS_GSM7: u8 = 0x00;
/// TP-DCS: 8-bit data.
pub const DCS_OCTET: u8 = 0x04;
/// TP-DCS: UCS-2.
pub const DCS_UCS2: u8 = 0x08;

/// The most octets of user data in one TPDU.
pub const MAX_UD_OCTETS: usize = 140;
/// The most septets of user data in one TPDU.
pub const MAX_UD_SEPTETS: usize = 160;

/// What a data coding scheme says the user data is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    Octet,
    Ucs2,
}

/// The alphabet of a TP-DCS (TS 23.038 §4: the general data coding groups, the message
/// waiting groups and the data coding/message class group). Reserved values read as GSM
/// 7-bit, as §4 tells a receiver to.
pub fn alphabet(dcs: u8) -> Alphabet {
    match dcs >> 4 {
        // General data coding (00xx) and automatic deletion (01xx): bits 3-2.
        0x0..=0x7 => match (dcs >> 2) & 0x3 {
            1 => Alphabet::Octet,
            2 => Alphabet::Ucs2,
            _ => Alphabet::Gsm7,
        },
        // Message waiting indication: discard / store (GSM 7-bit), store (UCS-2).
        0xc | 0xd => Alphabet::Gsm7,
        0xe => Alphabet::Ucs2,
        // Data coding / message class: bit 2.
        0xf if dcs & 0x04 != 0 => Alphabet::Octet,
        _ => Alphabet::Gsm7,
    }
}

/// An information element of the user data header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ie {
    /// Concatenated short message (IEI 00, 8-bit reference; IEI 08, 16-bit).
    Concat {
        reference: u16,
        total: u8,
        seq: u8,
        wide: bool,
    },
    /// Any other element, kept as it came.
    Other { iei: u8, data: Vec<u8> },
}

/// What the user data carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Text (GSM 7-bit or UCS-2).
    Text(String),
    /// 8-bit data.
    Octets(Vec<u8>),
}

/// TP-UD with its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub header: Vec<Ie>,
    pub body: Body,
}

impl UserData {
    /// Text without a header.
    pub fn text(s: &str) -> UserData {
        UserData {
            header: Vec::new(),
            body: Body::Text(s.to_string()),
        }
    }

    /// The concatenation element: (reference, total, sequence number).
    pub fn concat(&self) -> Option<(u16, u8, u8)> {
        self.header.iter().find_map(|ie| match ie {
            Ie::Concat {
                reference,
                total,
                seq,
                ..
            } => Some((*reference, *total, *seq)),
            Ie::Other { .. } => None,
        })
    }

    /// The text, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match &self.body {
            Body::Text(t) => Some(t),
            Body::Octets(_) => None,
        }
    }

    /// The user data header as it goes on the wire (TP-UDHL first); empty without one.
    pub fn header_bytes(&self) -> Result<Vec<u8>, SmsError> {
        if self.header.is_empty() {
            return Ok(Vec::new());
        }
        let mut h = vec![0u8];
        for ie in &self.header {
            match ie {
                Ie::Concat {
                    reference,
                    total,
                    seq,
                    wide: false,
                } => h.extend_from_slice(&[0x00, 3, *reference as u8, *total, *seq]),
                Ie::Concat {
                    reference,
                    total,
                    seq,
                    wide: true,
                } => {
                    let r = reference.to_be_bytes();
                    h.extend_from_slice(&[0x08, 4, r[0], r[1], *total, *seq]);
                }
                Ie::Other { iei, data } => {
                    if data.len() > 137 {
                        return Err(SmsError::TooLong("a header element".into()));
                    }
                    h.push(*iei);
                    h.push(data.len() as u8);
                    h.extend_from_slice(data);
                }
            }
        }
        h[0] = (h.len() - 1) as u8;
        Ok(h)
    }

    /// Appends TP-UDL and TP-UD for `dcs`; whether a header went in (TP-UDHI).
    pub fn encode(&self, dcs: u8, out: &mut Vec<u8>) -> Result<bool, SmsError> {
        let header = self.header_bytes()?;
        let hlen = header.len();
        match (alphabet(dcs), &self.body) {
            (Alphabet::Gsm7, Body::Text(t)) => {
                let septets = gsm7::encode(t).ok_or_else(|| {
                    SmsError::Invalid("the text is not all in the GSM 7-bit alphabet".into())
                })?;
                let (fill, hsep) = header_septets(hlen);
                let udl = hsep + septets.len();
                if udl > MAX_UD_SEPTETS {
                    return Err(SmsError::TooLong(format!(
                        "{udl} septets of user data (at most {MAX_UD_SEPTETS})"
                    )));
                }
                out.push(udl as u8);
                out.extend_from_slice(&header);
                out.extend_from_slice(&gsm7::pack(&septets, fill));
            }
            (Alphabet::Ucs2, Body::Text(t)) => {
                let body: Vec<u8> = t.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
                push_octets(&header, &body, out)?;
            }
            (Alphabet::Octet, Body::Octets(d)) => push_octets(&header, d, out)?,
            (a, _) => {
                return Err(SmsError::Invalid(format!(
                    "data coding {dcs:02x} ({a:?}) does not match the user data"
                )))
            }
        }
        Ok(hlen > 0)
    }

    /// Reads TP-UDL and TP-UD at `b[*at..]` for `dcs`, with a header when `udhi`.
    pub fn decode(b: &[u8], at: &mut usize, dcs: u8, udhi: bool) -> Result<UserData, SmsError> {
        let udl = *b.get(*at).ok_or(SmsError::Short("TP-UDL"))? as usize;
        *at += 1;
        let alpha = alphabet(dcs);
        let octets = match alpha {
            Alphabet::Gsm7 => {
                if udl > MAX_UD_SEPTETS {
                    return Err(SmsError::Invalid(format!("TP-UDL {udl} septets")));
                }
                (udl * 7).div_ceil(8)
            }
            _ => {
                if udl > MAX_UD_OCTETS {
                    return Err(SmsError::Invalid(format!("TP-UDL {udl} octets")));
                }
                udl
            }
        };
        let ud = b
            .get(*at..*at + octets)
            .ok_or(SmsError::Short("TP-UD shorter than TP-UDL"))?;
        *at += octets;
        let (header, hlen) = if udhi {
            let udhl = *ud.first().ok_or(SmsError::Short("TP-UDHL"))? as usize;
            let h = ud
                .get(1..1 + udhl)
                .ok_or(SmsError::Short("the user data header"))?;
            (parse_header(h)?, 1 + udhl)
        } else {
            (Vec::new(), 0)
        };
        let body = match alpha {
            Alphabet::Gsm7 => {
                let (fill, hsep) = header_septets(hlen);
                let count = udl
                    .checked_sub(hsep)
                    .ok_or(SmsError::Invalid("the header is longer than TP-UDL".into()))?;
                let s = gsm7::unpack(&ud[hlen..], fill, count)
                    .ok_or(SmsError::Short("GSM 7-bit user data"))?;
                Body::Text(gsm7::decode(&s))
            }
            Alphabet::Ucs2 => {
                let d = ud
                    .get(hlen..)
                    .ok_or(SmsError::Invalid("the header is longer than TP-UDL".into()))?;
                let units: Vec<u16> = d
                    .chunks_exact(2)
                    .map(|p| u16::from_be_bytes([p[0], p[1]]))
                    .collect();
                Body::Text(String::from_utf16_lossy(&units))
            }
            Alphabet::Octet => Body::Octets(
                ud.get(hlen..)
                    .ok_or(SmsError::Invalid("the header is longer than TP-UDL".into()))?
                    .to_vec(),
            ),
        };
        Ok(UserData { header, body })
    }
}

fn push_octets(header: &[u8], body: &[u8], out: &mut Vec<u8>) -> Result<(), SmsError> {
    let udl = header.len() + body.len();
    if udl > MAX_UD_OCTETS {
        return Err(SmsError::TooLong(format!(
            "{udl} octets of user data (at most {MAX_UD_OCTETS})"
        )));
    }
    out.push(udl as u8);
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    Ok(())
}

/// For a header of `hlen` octets (UDHL included): the fill bits before the text and the
/// septets header and fill take together.
fn header_septets(hlen: usize) -> (usize, usize) {
    if hlen == 0 {
        return (0, 0);
    }
    let bits = hlen * 8;
    let fill = (7 - bits % 7) % 7;
    (fill, (bits + fill) / 7)
}

/// Reads the information elements of a user data header (`h` without its TP-UDHL).
pub fn parse_header(mut h: &[u8]) -> Result<Vec<Ie>, SmsError> {
    let mut out = Vec::new();
    while !h.is_empty() {
        let (iei, len) = match h {
            [iei, len, ..] => (*iei, *len as usize),
            _ => return Err(SmsError::Short("a header element")),
        };
        let data = h
            .get(2..2 + len)
            .ok_or(SmsError::Short("a header element's data"))?;
        out.push(match (iei, data) {
            (0x00, [r, t, s]) => Ie::Concat {
                reference: u16::from(*r),
                total: *t,
                seq: *s,
                wide: false,
            },
            (0x08, [r1, r2, t, s]) => Ie::Concat {
                reference: u16::from_be_bytes([*r1, *r2]),
                total: *t,
                seq: *s,
                wide: true,
            },
            _ => Ie::Other {
                iei,
                data: data.to_vec(),
            },
        });
        h = &h[2 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(ud: &UserData, dcs: u8) -> Vec<u8> {
        let mut b = Vec::new();
        let udhi = ud.encode(dcs, &mut b).unwrap();
        let mut at = 0;
        assert_eq!(&UserData::decode(&b, &mut at, dcs, udhi).unwrap(), ud);
        assert_eq!(at, b.len());
        b
    }

    #[test]
    fn dcs_alphabets() {
        assert_eq!(alphabet(0x00), Alphabet::Gsm7);
        assert_eq!(alphabet(0x04), Alphabet::Octet);
        assert_eq!(alphabet(0x08), Alphabet::Ucs2);
        assert_eq!(alphabet(0x18), Alphabet::Ucs2, "UCS-2, class given");
        assert_eq!(alphabet(0xf0), Alphabet::Gsm7, "class 0 (flash), GSM");
        assert_eq!(alphabet(0xf4), Alphabet::Octet);
        assert_eq!(alphabet(0xe0), Alphabet::Ucs2);
        assert_eq!(alphabet(0x0c), Alphabet::Gsm7, "reserved reads as GSM");
    }

    /// "hellohello" as TP-UDL + TP-UD: 0A E8 32 9B FD 46 97 D9 EC 37.
    #[test]
    fn gsm7_text_without_a_header() {
        let b = round(&UserData::text("hellohello"), DCS_GSM7);
        assert_eq!(
            b,
            [0x0a, 0xe8, 0x32, 0x9b, 0xfd, 0x46, 0x97, 0xd9, 0xec, 0x37]
        );
        let full = "a".repeat(160);
        let b = round(&UserData::text(&full), DCS_GSM7);
        assert_eq!(b.len(), 141);
        assert!(matches!(
            UserData::text(&"a".repeat(161)).encode(DCS_GSM7, &mut Vec::new()),
            Err(SmsError::TooLong(_))
        ));
        assert!(UserData::text("안녕")
            .encode(DCS_GSM7, &mut Vec::new())
            .is_err());
    }

    /// A concatenated part: UDH 05 00 03 RR TT SS, one fill bit, 153 septets at most: UDL
    /// counts the header's 7 septets.
    #[test]
    fn a_concatenated_gsm7_part_with_its_fill_bit() {
        let ud = UserData {
            header: vec![Ie::Concat {
                reference: 0x42,
                total: 2,
                seq: 1,
                wide: false,
            }],
            body: Body::Text("b".repeat(153)),
        };
        let b = round(&ud, DCS_GSM7);
        assert_eq!(b[0], 160, "7 header septets + 153");
        assert_eq!(&b[1..7], &[0x05, 0x00, 0x03, 0x42, 0x02, 0x01]);
        // "b" = 0x62 shifted by the fill bit: C4 at the first text octet's low bits.
        assert_eq!(b[7], 0xc4);
        assert_eq!(ud.concat(), Some((0x42, 2, 1)));
        assert_eq!(b.len(), 141);
        let wide = UserData {
            header: vec![Ie::Concat {
                reference: 0x1234,
                total: 3,
                seq: 3,
                wide: true,
            }],
            body: Body::Text("end".into()),
        };
        let b = round(&wide, DCS_GSM7);
        assert_eq!(&b[1..8], &[0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x03]);
    }

    /// Korean text in UCS-2: UDL counts octets.
    #[test]
    fn ucs2_and_octets() {
        let b = round(&UserData::text("안녕하세요"), DCS_UCS2);
        assert_eq!(b[0], 10);
        assert_eq!(&b[1..3], &[0xc5, 0x48]);
        let part = UserData {
            header: vec![Ie::Concat {
                reference: 7,
                total: 2,
                seq: 2,
                wide: false,
            }],
            body: Body::Text("가".repeat(67)),
        };
        assert_eq!(round(&part, DCS_UCS2)[0], 140);
        let data = UserData {
            header: vec![Ie::Other {
                iei: 0x05,
                data: vec![0x0b, 0x84, 0x23, 0xf0],
            }],
            body: Body::Octets(vec![1, 2, 3]),
        };
        round(&data, DCS_OCTET);
        assert!(UserData::text("x")
            .encode(DCS_OCTET, &mut Vec::new())
            .is_err());
    }

    #[test]
    fn truncated_and_inconsistent_user_data_are_errors() {
        let mut at = 0;
        assert!(UserData::decode(&[0x0a, 0xe8], &mut at, DCS_GSM7, false).is_err());
        let mut at = 0;
        assert!(UserData::decode(&[200], &mut at, DCS_GSM7, false).is_err());
        // A header longer than the data.
        let mut at = 0;
        assert!(UserData::decode(&[0x02, 0x09, 0x00], &mut at, DCS_UCS2, true).is_err());
        let mut at = 0;
        assert!(UserData::decode(&[0x01, 0x05], &mut at, DCS_GSM7, true).is_err());
    }
}
