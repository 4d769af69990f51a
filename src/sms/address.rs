//! Addresses and time stamps in semi-octets: the TP address (TS 23.040 §9.1.2.5: length in
//! digits), the RP address (TS 24.011 §8.2.5.1-2: length in octets), both BCD with swapped
//! nibbles and an `F` filler, and the TP service-centre time stamp (TS 23.040 §9.2.3.11).

use super::gsm7;
use super::SmsError;

/// Type of number and numbering plan (the octet after the length; TS 23.040 §9.1.2.5).
pub const TON_INTERNATIONAL: u8 = 0x91;
/// Unknown type of number, ISDN/telephone numbering plan.
pub const TON_UNKNOWN: u8 = 0x81;
/// An alphanumeric address (GSM 7-bit packed), as a business sender shows.
pub const TON_ALPHANUMERIC: u8 = 0xd0;

/// A phone-number or alphanumeric address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Type of number and numbering plan.
    pub toa: u8,
    /// The digits (0-9, `*`, `#`, `a`-`c`), or the text of an alphanumeric address.
    pub value: String,
}

impl Address {
    /// `+15550002` → international `15550002`; other digits → unknown type.
    pub fn from_number(number: &str) -> Address {
        match number.strip_prefix('+') {
            Some(d) => Address {
                toa: TON_INTERNATIONAL,
                value: d.to_string(),
            },
            None => Address {
                toa: TON_UNKNOWN,
                value: number.to_string(),
            },
        }
    }

    /// The number as written with `+` when international (the text of an alphanumeric one).
    pub fn number(&self) -> String {
        if self.toa & 0x70 == 0x10 {
            format!("+{}", self.value)
        } else {
            self.value.clone()
        }
    }

    fn is_alphanumeric(&self) -> bool {
        self.toa & 0x70 == 0x50
    }

    /// The semi-octets of the value (digits, or packed septets for alphanumeric).
    fn body(&self) -> Result<(Vec<u8>, usize), SmsError> {
        if self.is_alphanumeric() {
            let s = gsm7::encode(&self.value)
                .ok_or_else(|| SmsError::Invalid("alphanumeric address not in GSM 7-bit".into()))?;
            if s.len() > 11 {
                return Err(SmsError::Invalid(
                    "alphanumeric address over 11 characters".into(),
                ));
            }
            let packed = gsm7::pack(&s, 0);
            // Its length in semi-octets: the useful ones.
            let semis = (s.len() * 7).div_ceil(4);
            return Ok((packed, semis));
        }
        let digits = bcd(&self.value)?;
        if digits.len() > 20 {
            return Err(SmsError::Invalid("address over 20 digits".into()));
        }
        Ok((digits, self.value.len()))
    }

    /// The TP form: digits count, type, semi-octets.
    pub fn encode_tp(&self, out: &mut Vec<u8>) -> Result<(), SmsError> {
        let (body, semis) = self.body()?;
        out.push(semis as u8);
        out.push(self.toa);
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Reads a TP address at `b[*at..]`, moving `at` past it.
    pub fn decode_tp(b: &[u8], at: &mut usize) -> Result<Address, SmsError> {
        let semis = *b.get(*at).ok_or(SmsError::Short("TP address length"))? as usize;
        if semis > 20 {
            return Err(SmsError::Invalid(format!("TP address of {semis} digits")));
        }
        let toa = *b.get(*at + 1).ok_or(SmsError::Short("TP address type"))?;
        let n = semis.div_ceil(2);
        let body = b
            .get(*at + 2..*at + 2 + n)
            .ok_or(SmsError::Short("TP address"))?;
        *at += 2 + n;
        address_of(toa, body, semis)
    }

    /// The RP form: octets count (type included), type, semi-octets; an empty address is a
    /// single zero octet.
    pub fn encode_rp(addr: Option<&Address>, out: &mut Vec<u8>) -> Result<(), SmsError> {
        let Some(a) = addr else {
            out.push(0);
            return Ok(());
        };
        if a.is_alphanumeric() {
            return Err(SmsError::Invalid(RP_NOT_ALPHANUMERIC.into()));
        }
        let (body, _) = a.body()?;
        if body.len() > 10 {
            return Err(SmsError::Invalid("RP address over 10 octets".into()));
        }
        out.push(body.len() as u8 + 1);
        out.push(a.toa);
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Reads an RP address at `b[*at..]` (None when empty), moving `at` past it.
    pub fn decode_rp(b: &[u8], at: &mut usize) -> Result<Option<Address>, SmsError> {
        let n = *b.get(*at).ok_or(SmsError::Short("RP address length"))? as usize;
        if n == 0 {
            *at += 1;
            return Ok(None);
        }
        if n > 11 {
            return Err(SmsError::Invalid(format!("RP address of {n} octets")));
        }
        let v = b
            .get(*at + 1..*at + 1 + n)
            .ok_or(SmsError::Short("RP address"))?;
        *at += 1 + n;
        let toa = v[0];
        if toa & 0x70 == 0x50 {
            return Err(SmsError::Invalid(RP_NOT_ALPHANUMERIC.into()));
        }
        let body = &v[1..];
        let semis = body.len() * 2 - usize::from(body.last().is_some_and(|l| l >> 4 == 0xf));
        address_of(toa, body, semis).map(Some)
    }
}

/// TS 24.011 §8.2.5.1-2: RP-OA and RP-DA are numbers (the service centre's, in BCD); only
/// a TP address may be alphanumeric.
const RP_NOT_ALPHANUMERIC: &str = "an RP address is a number, not alphanumeric (TS 24.011 8.2.5.1)";

fn address_of(toa: u8, body: &[u8], semis: usize) -> Result<Address, SmsError> {
    if toa & 0x70 == 0x50 {
        let count = semis * 4 / 7;
        let s = gsm7::unpack(body, 0, count).ok_or(SmsError::Short("alphanumeric address"))?;
        return Ok(Address {
            toa,
            value: gsm7::decode(&s),
        });
    }
    let mut value = String::with_capacity(semis);
    for i in 0..semis {
        let o = body[i / 2];
        let d = if i % 2 == 0 { o & 0x0f } else { o >> 4 };
        value.push(digit_char(d).ok_or_else(|| {
            SmsError::Invalid(format!(
                "address semi-octet {d:x} is a filler inside the number"
            ))
        })?);
    }
    Ok(Address { toa, value })
}

fn digit_char(d: u8) -> Option<char> {
    match d {
        0..=9 => Some((b'0' + d) as char),
        0xa => Some('*'),
        0xb => Some('#'),
        0xc => Some('a'),
        0xd => Some('b'),
        0xe => Some('c'),
        _ => None,
    }
}

/// Digits as swapped semi-octets with an `F` filler.
fn bcd(digits: &str) -> Result<Vec<u8>, SmsError> {
    let mut nib = Vec::with_capacity(digits.len() + 1);
    for c in digits.chars() {
        nib.push(match c {
            '0'..='9' => c as u8 - b'0',
            '*' => 0xa,
            '#' => 0xb,
            'a' | 'A' => 0xc,
            'b' | 'B' => 0xd,
            'c' | 'C' => 0xe,
            _ => {
                return Err(SmsError::Invalid(format!(
                    "{c:?} is not a digit of a phone number"
                )))
            }
        });
    }
    if nib.len() % 2 == 1 {
        nib.push(0xf);
    }
    Ok(nib.chunks(2).map(|p| p[0] | (p[1] << 4)).collect())
}

/// A TP time stamp (service-centre time stamp, discharge time, absolute validity): local time
/// and its offset from UTC in quarters of an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Two digits (`26` for 2026).
    pub year: u8,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Offset from UTC in quarters of an hour (-79..=79).
    pub tz_quarters: i8,
}

impl Timestamp {
    /// The UTC time `unix_secs` seconds after the epoch (offset 0).
    pub fn from_unix(unix_secs: u64) -> Timestamp {
        let days = (unix_secs / 86_400) as i64;
        let rem = unix_secs % 86_400;
        // Civil from days (H. Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Timestamp {
            year: year.rem_euclid(100) as u8,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
            tz_quarters: 0,
        }
    }

    /// The seven octets.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        ] {
            out.push(swap(v % 100));
        }
        let q = self.tz_quarters.unsigned_abs().min(79);
        let mut tz = swap(q);
        if self.tz_quarters < 0 {
            tz |= 0x08;
        }
        out.push(tz);
    }

    /// Reads seven octets at `b[*at..]`.
    pub fn decode(b: &[u8], at: &mut usize) -> Result<Timestamp, SmsError> {
        let v = b.get(*at..*at + 7).ok_or(SmsError::Short("time stamp"))?;
        *at += 7;
        let d = |o: u8| -> Result<u8, SmsError> {
            let (lo, hi) = (o & 0x0f, o >> 4);
            if lo > 9 || hi > 9 {
                return Err(SmsError::Invalid(format!("time stamp octet {o:02x}")));
            }
            Ok(lo * 10 + hi)
        };
        let tz_o = v[6];
        if tz_o >> 4 > 9 {
            return Err(SmsError::Invalid(format!("time zone octet {tz_o:02x}")));
        }
        let q = (tz_o & 0x07) * 10 + (tz_o >> 4);
        let tz_quarters = if tz_o & 0x08 != 0 {
            -(q as i8)
        } else {
            q as i8
        };
        Ok(Timestamp {
            year: d(v[0])?,
            month: d(v[1])?,
            day: d(v[2])?,
            hour: d(v[3])?,
            minute: d(v[4])?,
            second: d(v[5])?,
            tz_quarters,
        })
    }
}

/// Two decimal digits, swapped into one octet (`26` → `0x62`).
fn swap(v: u8) -> u8 {
    (v / 10) | ((v % 10) << 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rp_address_is_never_alphanumeric() {
        // Found by fuzzing: TON alphanumeric (0x52) in RP-DA read as packed text, which does
        // not encode back to the same octets.
        let b = [8u8, 0x52, 0xe3, 0x4d, 0xb0, 0x4f, 0x2c, 0xb0, 0xb1];
        let mut at = 0;
        assert!(Address::decode_rp(&b, &mut at).is_err());
        let mut out = Vec::new();
        let alpha = Address {
            toa: TON_ALPHANUMERIC,
            value: "SHOP".into(),
        };
        assert!(Address::encode_rp(Some(&alpha), &mut out).is_err());
        assert!(crate::sms::RpMessage::decode(&[
            0, 0, 0, 8, 0x52, 0xe3, 0x4d, 0xb0, 0x4f, 0x2c, 0xb0, 0xb1, 0
        ])
        .is_err());
    }

    #[test]
    fn tp_and_rp_addresses_both_ways() {
        // TS 23.040's layout: +15550002 → 08 91 51 55 00 20.
        let a = Address::from_number("+15550002");
        let mut b = Vec::new();
        a.encode_tp(&mut b).unwrap();
        assert_eq!(b, [0x08, 0x91, 0x51, 0x55, 0x00, 0x20]);
        let mut at = 0;
        assert_eq!(Address::decode_tp(&b, &mut at).unwrap(), a);
        assert_eq!(at, b.len());
        assert_eq!(a.number(), "+15550002");
        // An odd number of digits gets the F filler; the RP form counts octets.
        let sc = Address::from_number("+821012345");
        let mut r = Vec::new();
        Address::encode_rp(Some(&sc), &mut r).unwrap();
        assert_eq!(r, [0x06, 0x91, 0x28, 0x01, 0x21, 0x43, 0xf5]);
        let mut at = 0;
        assert_eq!(Address::decode_rp(&r, &mut at).unwrap(), Some(sc));
        let mut e = Vec::new();
        Address::encode_rp(None, &mut e).unwrap();
        assert_eq!(e, [0]);
        let mut at = 0;
        assert_eq!(Address::decode_rp(&e, &mut at).unwrap(), None);
        // A short code, type unknown.
        let s = Address::from_number("5555");
        assert_eq!(s.toa, TON_UNKNOWN);
        assert_eq!(s.number(), "5555");
        assert!(Address::from_number("+1-555")
            .encode_tp(&mut Vec::new())
            .is_err());
    }

    #[test]
    fn an_alphanumeric_sender() {
        let a = Address {
            toa: TON_ALPHANUMERIC,
            value: "rcslab".into(),
        };
        let mut b = Vec::new();
        a.encode_tp(&mut b).unwrap();
        let mut at = 0;
        assert_eq!(Address::decode_tp(&b, &mut at).unwrap(), a);
    }

    #[test]
    fn time_stamps_with_zones() {
        let t = Timestamp {
            year: 26,
            month: 12,
            day: 2,
            hour: 10,
            minute: 40,
            second: 5,
            tz_quarters: 36,
        };
        let mut b = Vec::new();
        t.encode(&mut b);
        assert_eq!(b, [0x62, 0x21, 0x20, 0x01, 0x04, 0x50, 0x63]);
        let mut at = 0;
        assert_eq!(Timestamp::decode(&b, &mut at).unwrap(), t);
        let west = Timestamp {
            tz_quarters: -20,
            ..t
        };
        let mut b = Vec::new();
        west.encode(&mut b);
        assert_eq!(b[6], 0x0a, "-20: digits 2 0, the sign bit");
        let mut at = 0;
        assert_eq!(Timestamp::decode(&b, &mut at).unwrap(), west);
        assert_eq!(
            Timestamp::from_unix(1_796_208_005),
            Timestamp {
                year: 26,
                month: 12,
                day: 2,
                hour: 10,
                minute: 40,
                second: 5,
                tz_quarters: 0
            }
        );
        assert!(Timestamp::decode(&[0xff; 7], &mut 0).is_err());
        // A time zone whose units digit is not a digit (found by fuzzing: it read as -85
        // quarters and wrote back as -79).
        assert!(Timestamp::decode(&[0, 0, 0, 0, 0, 0, 0xfd], &mut 0).is_err());
        let mut at = 0;
        let far = Timestamp::decode(&[0, 0, 0, 0, 0, 0, 0x9f], &mut at).unwrap();
        assert_eq!(far.tz_quarters, -79);
        let mut b = Vec::new();
        far.encode(&mut b);
        assert_eq!(b[6], 0x9f);
        assert!(Timestamp::decode(&[0; 6], &mut 0).is_err());
    }
}
