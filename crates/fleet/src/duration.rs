//! Durations as people write them in configuration files: `500ms`, `30s`,
//! `5m`, `2h`, `1d`, or combinations such as `1h30m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from or written to text (`"90s"`, `"1h30m"`), stored in
/// whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub u64);

impl Span {
    /// From whole seconds.
    pub const fn secs(s: u64) -> Self {
        Self(s * 1000)
    }

    /// From whole minutes.
    pub const fn mins(m: u64) -> Self {
        Self(m * 60_000)
    }

    /// Milliseconds.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// As a `std::time::Duration`.
    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// Milliseconds as `i64` (saturating), for timestamp arithmetic.
    pub fn millis_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// Parses `500ms`, `30s`, `5m`, `2h`, `1d` and concatenations of them
    /// (`1h30m`). Bare numbers are refused: a unit is always required.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty duration".into());
        }
        let mut total: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("{text:?}: expected a number"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{text:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = match unit {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => return Err(format!("{text:?}: a unit (ms, s, m, h, d) is required")),
                other => return Err(format!("{text:?}: unknown unit {other:?}")),
            };
            total = n
                .checked_mul(scale)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("{text:?}: duration too large"))?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Span {
    /// The shortest exact text: `1h30m`, `90s` is written `1m30s`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut ms = self.0;
        for (unit, scale) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms >= scale {
                write!(f, "{}{unit}", ms / scale)?;
                ms %= scale;
            }
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("1h30m", 5_400_000),
            ("1m30s250ms", 90_250),
        ] {
            assert_eq!(Span::parse(text), Ok(Span(ms)), "{text}");
            assert_eq!(Span::parse(&Span(ms).to_string()), Ok(Span(ms)));
        }
        assert_eq!(Span(90_000).to_string(), "1m30s");
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "-5s",
            "5 s",
            "99999999999999999999s",
            "1.5s",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }
}
