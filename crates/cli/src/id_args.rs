//! Command-line values of the identifiers, parsed into their validating
//! types (`value_parser`), so a bad EID or ICCID is refused by the argument
//! parser with a message naming the argument and what is wrong, before any
//! command runs.

use ferrosim_ids::{Eid, Iccid};

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
    }
}
