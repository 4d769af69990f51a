//! SMPP 3.4 time formats (§7.1.1) for validity_period: absolute `YYMMDDhhmmsstnnp` (local
//! time, `nn` quarter hours ahead of (`+`) or behind (`-`) UTC) and relative `YYMMDDhhmmss000R`.
//!
//! The spec gives two digits of year: they are read as 2000–2099. A relative period counts a
//! year as 365 days and a month as 30 days (as Kannel and most SMSCs do).

/// Why a §7.1.1 time cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not 16 characters of the §7.1.1 layout.
    #[error("SMPP time is not YYMMDDhhmmsstnnp")]
    Format,
    /// A field out of its range (month 13, minute 61, offset over 48 quarters…).
    #[error("SMPP time field out of range")]
    Range,
    /// An absolute time that is already past.
    #[error("SMPP time is in the past")]
    Past,
}

/// The seconds from `unix_now` until `text` (validity_period), or `None` for an empty field
/// (the SC's default).
pub fn seconds_until(text: &str, unix_now: u64) -> Result<Option<u64>, TimeError> {
    if text.is_empty() {
        return Ok(None);
    }
    let b = text.as_bytes();
    if b.len() != 16 || !b[..15].iter().all(u8::is_ascii_digit) {
        return Err(TimeError::Format);
    }
    let n = |i: usize| u64::from(b[i] - b'0') * 10 + u64::from(b[i + 1] - b'0');
    let (yy, mo, dd, hh, mi, ss) = (n(0), n(2), n(4), n(6), n(8), n(10));
    let quarters = n(13);
    match b[15] {
        b'R' => {
            if hh > 23 || mi > 59 || ss > 59 || mo > 11 || dd > 30 {
                // §7.1.1.2 relative fields need not be normalised, but hours past 23 etc.
                // are almost always a typo; refuse rather than guess.
                return Err(TimeError::Range);
            }
            let secs = ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss;
            Ok(Some(secs))
        }
        sign @ (b'+' | b'-') => {
            if !(1..=12).contains(&mo)
                || dd == 0
                || dd > days_in_month(2000 + yy, mo)
                || hh > 23
                || mi > 59
                || ss > 59
                || quarters > 48
            {
                return Err(TimeError::Range);
            }
            let local = (days_from_civil(2000 + yy, mo, dd) * 24 + hh) * 3600 + mi * 60 + ss;
            let offset = quarters * 15 * 60;
            // Local time is `offset` ahead of UTC for '+': UTC = local - offset.
            let utc = if sign == b'+' {
                local.checked_sub(offset).ok_or(TimeError::Range)?
            } else {
                local + offset
            };
            match utc.checked_sub(unix_now) {
                Some(s) if s > 0 => Ok(Some(s)),
                _ => Err(TimeError::Past),
            }
        }
        _ => Err(TimeError::Format),
    }
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date, for years from 1970 (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 12:00:00 UTC.
    const NOW: u64 = 1_796_212_800;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 2) * 86_400 + 12 * 3600, NOW);
    }

    #[test]
    fn empty_is_the_default() {
        assert_eq!(seconds_until("", NOW), Ok(None));
    }

    #[test]
    fn relative_periods() {
        assert_eq!(seconds_until("000000010000000R", NOW), Ok(Some(3600)));
        assert_eq!(seconds_until("000001000000000R", NOW), Ok(Some(86_400)));
        assert_eq!(
            seconds_until("010100000000000R", NOW),
            Ok(Some(395 * 86_400))
        );
        assert_eq!(
            seconds_until("000000250000000R", NOW),
            Err(TimeError::Range)
        );
    }

    #[test]
    fn absolute_times_with_their_offset() {
        // 13:00 UTC, written as UTC, as 14:00 at +1 h (4 quarters) and 11:00 at -2 h.
        assert_eq!(seconds_until("261202130000000+", NOW), Ok(Some(3600)));
        assert_eq!(seconds_until("261202140000004+", NOW), Ok(Some(3600)));
        assert_eq!(seconds_until("261202110000008-", NOW), Ok(Some(3600)));
        assert_eq!(seconds_until("261202110000000+", NOW), Err(TimeError::Past));
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in [
            "2612021300000+",
            "26120213000000+X",
            "261302130000000+",
            "260230130000000+",
            "261202130000049+",
            "26120213000000a+",
            "261202130000000Z",
        ] {
            assert!(seconds_until(bad, NOW).is_err(), "{bad}");
        }
    }
}
