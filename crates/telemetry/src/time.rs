//! Time as telemetry sees it: [`Timestamp`] (UTC milliseconds, from
//! `ferrosim-ids`), passed in.
//!
//! Nothing in this crate reads a clock: every event carries its time and
//! every computation takes the `as_of` instant it evaluates at.

pub use ferrosim_ids::Timestamp;

/// Milliseconds from `start` to `end`, never negative: an interval whose
/// end is stamped before its start (clock skew between reporters) is 0.
pub fn elapsed_ms(start: Timestamp, end: Timestamp) -> u64 {
    u64::try_from(end.since(start).as_millis()).unwrap_or(u64::MAX)
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (UTC), or plain
/// milliseconds since the epoch. Used by report command lines.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Timestamp);
    }
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(Timestamp(ms));
    }
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[b.len() - 1] != b'Z' {
        return None;
    }
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    ms += (h * 3600 + mi * 60 + s) * 1000;
    match b.len() {
        20 => Some(Timestamp(ms)),
        24 if b[19] == b'.' => Some(Timestamp(ms + num(20..23)?)),
        _ => None,
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_agree() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_795_478_400_123).to_string(),
            "2026-11-24T00:00:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        for ms in [0, 951_782_400_000, 1_795_478_400_123, 1_795_564_799_999] {
            assert_eq!(parse_time(&Timestamp(ms).to_string()), Some(Timestamp(ms)));
        }
        assert_eq!(parse_time("2026-11-24"), Some(Timestamp(1_795_478_400_000)));
        assert_eq!(
            parse_time("2026-11-24T00:00:01Z"),
            Some(Timestamp(1_795_478_401_000))
        );
        assert_eq!(
            parse_time("1795478400000"),
            Some(Timestamp(1_795_478_400_000))
        );
    }

    #[test]
    fn parse_refuses_garbage() {
        for bad in [
            "",
            "2026-11",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "2026-11-24T25:00:00Z",
            "2026-11-24T00:00:00",
            "2026-11-24T00:00:00.1Z",
            "2026-11-24X00:00:00Z",
            "2026-1a-01",
            "+2026-11-24",
            "2026-11-24T00:00:00.000+01:00",
            "-5",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn negative_intervals_clamp_to_zero() {
        assert_eq!(elapsed_ms(Timestamp(10), Timestamp(5)), 0);
        assert_eq!(elapsed_ms(Timestamp(4), Timestamp(10)), 6);
    }
}
