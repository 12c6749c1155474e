//! Command-line values of the identifiers and times, parsed into their
//! validating types (`value_parser`), so a bad EID, ICCID, operator id or
//! time is refused by the argument parser with a message naming the
//! argument and what is wrong, before any command runs.

use ferrosim_ids::{Eid, Iccid, OperatorId, Timestamp};

/// An EID argument: 32 decimal digits with valid check digits.
pub fn eid(text: &str) -> Result<Eid, String> {
    text.trim()
        .parse()
        .map_err(|e| format!("`{text}` is not an EID: {e}"))
}

/// An ICCID argument: 19 or 20 digits ending in the Luhn check digit.
pub fn iccid(text: &str) -> Result<Iccid, String> {
    Iccid::new(text.trim()).map_err(|e| format!("`{text}` is not an ICCID: {e}"))
}

/// An operator id argument: 1 to 64 visible ASCII characters.
pub fn operator(text: &str) -> Result<OperatorId, String> {
    OperatorId::new(text).map_err(|e| format!("`{text}` is not an operator id: {e}"))
}

/// A time argument: RFC 3339 (`2026-12-04T21:00:00Z`) or a date
/// (`2026-12-04`, its midnight in UTC).
pub fn time(text: &str) -> Result<Timestamp, String> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    Timestamp::parse_rfc3339(&full).map_err(|_| {
        format!("`{text}`: expected an RFC 3339 time (2026-12-04T21:00:00Z) or a date (2026-12-04)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_values_parse_and_garbage_is_refused_with_its_reason() {
        let good = "89049032123451234512345678901235";
        assert_eq!(eid(good).unwrap().to_string(), good);
        assert_eq!(
            iccid("8944000000000000001").unwrap().as_str(),
            "8944000000000000001"
        );
        for bad in [
            "",
            "123",
            "8904903212345123451234567890123x",
            "89049032123451234512345678901234",
        ] {
            assert!(eid(bad).unwrap_err().contains("is not an EID"), "{bad}");
        }
        for bad in ["", "12x", "8944000000000000002", "89/../x", "\u{0}"] {
            assert!(iccid(bad).unwrap_err().contains("is not an ICCID"), "{bad}");
        }
        assert_eq!(operator("acme").unwrap().as_str(), "acme");
        for bad in ["", "bad operator!", "\u{0}", &"x".repeat(65), "é"] {
            assert!(
                operator(bad).unwrap_err().contains("is not an operator id"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_date_in_utc() {
        assert_eq!(
            time("1970-01-02").unwrap(),
            Timestamp::from_millis(86_400_000)
        );
        assert_eq!(
            time("1970-01-01T01:00:00+01:00").unwrap(),
            Timestamp::from_millis(0)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-45",
            "2026-1-1",
            "2026-01-01T25:00:00Z",
            "\u{0}",
        ] {
            assert!(
                time(bad).unwrap_err().contains("expected an RFC 3339 time"),
                "{bad:?}"
            );
        }
    }
}
