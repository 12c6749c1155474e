//! UTC times as RFC 3339 text, the way certificate validity is shown to
//! people and given on the command line (`2026-01-01T00:00:00Z`).

use std::time::SystemTime;

use crate::error::{Error, Result};

/// Formats a time as RFC 3339 UTC with seconds (falls back to seconds
/// relative to the Unix epoch outside years 1970 to 9999).
pub fn format_time(t: SystemTime) -> String {
    match der::DateTime::from_system_time(t) {
        Ok(dt) => dt.to_string(),
        Err(_) => match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => format!("{}s after the Unix epoch", d.as_secs()),
            Err(e) => format!("{}s before the Unix epoch", e.duration().as_secs()),
        },
    }
}

/// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(text: &str) -> Result<SystemTime> {
    let bad = || Error::InvalidTime(text.chars().take(64).collect());
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<u16> {
        let part = b.get(range).ok_or_else(bad)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(part.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
    };
    let (hour, minute, second) = match b.len() {
        10 => (0, 0, 0),
        20 if b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z' => {
            (num(11..13)?, num(14..16)?, num(17..19)?)
        }
        _ => return Err(bad()),
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let small = |n: u16| u8::try_from(n).map_err(|_| bad());
    der::DateTime::new(
        num(0..4)?,
        small(num(5..7)?)?,
        small(num(8..10)?)?,
        small(hour)?,
        small(minute)?,
        small(second)?,
    )
    .map(|dt| dt.to_system_time())
    .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let t = parse_time("2026-01-01T12:34:56Z").unwrap();
        assert_eq!(format_time(t), "2026-01-01T12:34:56Z");
        assert_eq!(
            format_time(parse_time("2024-02-29").unwrap()),
            "2024-02-29T00:00:00Z"
        );
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-30",
            "2026-01-01T25:00:00Z",
            "2026-01-01 00:00:00",
            "２０２６-01-01",
            "2026-01-01T00:00:00+01:00",
        ] {
            assert!(parse_time(s).is_err(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_time(&s);
        }
    }
}
