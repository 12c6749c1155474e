//! The eUICC identifier (EID) and EID prefixes.
//!
//! An EID is 32 decimal digits (GSMA SGP.29): the EUM identity number and
//! an individual number make up the first 30, and the last two are check
//! digits computed like ISO 7064 MOD 97-10 — read as one decimal number, a
//! valid EID leaves remainder 1 when divided by 97. On the card (ES10 `5A`)
//! it travels as 16 bytes, one digit per nibble, most significant first.
//!
//! An [`EidPrefix`] is what an EUM certificate restricts its eUICCs to: the
//! serialNumber of a nameConstraints directoryName, or an entry of the
//! permittedEins extension.

use std::fmt;
use std::str::FromStr;

use crate::ascii::Ascii;
use crate::error::{IdError, echo};

/// Number of decimal digits in an EID.
pub const EID_DIGITS: usize = 32;

/// A validated eUICC identifier: 32 decimal digits with correct check digits.
///
/// Stored as its 16-byte card encoding, so it is `Copy` and cheap to compare
/// and hash. `Display` gives the 32 digits; serde uses the same text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Eid([u8; EID_DIGITS / 2]);

impl Eid {
    /// Parses 32 decimal digits and checks the check digits.
    pub fn parse(digits: &str) -> Result<Self, IdError> {
        let bytes = digits.as_bytes();
        if bytes.len() != EID_DIGITS {
            return Err(invalid(digits, "an EID has exactly 32 digits"));
        }
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(invalid(digits, "an EID has only decimal digits"));
        }
        if mod97(bytes.iter().map(|b| b - b'0')) != 1 {
            return Err(invalid(digits, "wrong check digits (ISO 7064 MOD 97-10)"));
        }
        let mut out = [0u8; EID_DIGITS / 2];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *o = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
        }
        Ok(Eid(out))
    }

    /// Builds an EID from its first 30 digits, computing the two check digits.
    pub fn from_body(body: &str) -> Result<Self, IdError> {
        let bytes = body.as_bytes();
        if bytes.len() != EID_DIGITS - 2 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(invalid(body, "an EID body has exactly 30 decimal digits"));
        }
        // Append "00", take the remainder, and the check value is 98 - remainder.
        let r = mod97(bytes.iter().map(|b| b - b'0').chain([0, 0]));
        let check = 98 - r;
        Self::parse(&format!("{body}{check:02}"))
    }

    /// Decodes the 16-byte card encoding (one digit per nibble) and checks the check digits.
    pub fn from_bcd(bytes: &[u8]) -> Result<Self, IdError> {
        if bytes.len() != EID_DIGITS / 2 {
            return Err(IdError::Eid {
                value: hex::encode_upper(bytes.get(..32).unwrap_or(bytes)),
                problem: "an encoded EID has exactly 16 bytes",
            });
        }
        Self::parse(&hex::encode(bytes))
    }

    /// The 16-byte card encoding (ES10 tag `5A`).
    pub fn to_bcd(&self) -> [u8; EID_DIGITS / 2] {
        self.0
    }

    /// The 32 digits as a string.
    pub fn digits(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether this EID lies in the range named by `prefix`.
    pub fn has_prefix(&self, prefix: &EidPrefix) -> bool {
        let p = prefix.as_str().as_bytes();
        p.iter().enumerate().all(|(i, &d)| {
            let byte = self.0[i / 2];
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0F };
            d.wrapping_sub(b'0') == nibble
        })
    }
}

impl fmt::Display for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits())
    }
}

impl fmt::Debug for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Eid({self})")
    }
}

impl FromStr for Eid {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

serde_as_text!(Eid, "an EID of 32 decimal digits");

/// The leading digits an EUM may give its eUICCs' EIDs (an EID range).
///
/// Between 1 and 30 decimal digits: the last two digits of an EID are check
/// digits and cannot be part of a range. Stored inline (no heap).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EidPrefix(Ascii<{ EID_DIGITS - 2 }>);

impl EidPrefix {
    /// Validates a prefix of 1 to 30 decimal digits.
    pub fn parse(digits: &str) -> Result<Self, IdError> {
        let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        match Ascii::new(digits.as_bytes()) {
            Some(text) if ok => Ok(EidPrefix(text)),
            _ => Err(IdError::EidPrefix {
                value: echo(digits),
            }),
        }
    }

    /// `89049032`, the EID range of the GSMA SGP.26 test EUM.
    pub fn sgp26_test_eum() -> Self {
        Self::parse("89049032").unwrap_or_else(|_| unreachable!("a valid constant prefix"))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Always false: a prefix has at least one digit. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

impl fmt::Display for EidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EidPrefix({})", self.as_str())
    }
}

impl FromStr for EidPrefix {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

serde_as_text!(EidPrefix, "an EID prefix of 1 to 30 decimal digits");

/// Remainder of a decimal digit sequence divided by 97.
fn mod97(digits: impl Iterator<Item = u8>) -> u32 {
    digits.fold(0u32, |r, d| (r * 10 + u32::from(d)) % 97)
}

fn invalid(value: &str, problem: &'static str) -> IdError {
    IdError::Eid {
        value: echo(value),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // EIDs published in GSMA SGP.26 / SGP.23 (#EID1) and seen on commercial eUICCs.
    const VALID: [&str; 3] = [
        "89049032123451234512345678901235",
        "89086030202200000022000023022943",
        "89044045116727494800000004479366",
    ];

    #[test]
    fn known_eids_are_valid() {
        for s in VALID {
            let eid = Eid::parse(s).unwrap();
            assert_eq!(eid.to_string(), s);
            assert_eq!(Eid::from_bcd(&eid.to_bcd()).unwrap(), eid);
            assert_eq!(s.parse::<Eid>().unwrap(), eid);
        }
    }

    #[test]
    fn check_digits_are_computed_like_sgp29() {
        for s in VALID {
            assert_eq!(Eid::from_body(&s[..30]).unwrap().to_string(), s);
        }
    }

    #[test]
    fn wrong_check_digits_are_rejected() {
        let err = Eid::parse("89049032123451234512345678901234").unwrap_err();
        assert!(matches!(err, IdError::Eid { problem, .. } if problem.contains("check digits")));
    }

    #[test]
    fn bad_shapes_are_rejected_with_the_reason() {
        let problem = |r: Result<Eid, IdError>| match r {
            Err(IdError::Eid { problem, .. }) => problem,
            other => panic!("expected an EID error, got {other:?}"),
        };
        assert!(problem(Eid::parse("")).contains("32 digits"));
        assert!(problem(Eid::parse("8904903212345123451234567890123")).contains("32 digits"));
        assert!(problem(Eid::parse("8904903212345123451234567890123a")).contains("decimal"));
        assert!(problem(Eid::parse("８９049032123451234512345678901235")).contains("32 digits"));
        assert!(problem(Eid::from_bcd(&[0x89; 15])).contains("16 bytes"));
        assert!(problem(Eid::from_bcd(&[0xFA; 16])).contains("decimal"));
        assert!(problem(Eid::from_body("1234")).contains("30 decimal"));
        for bad in ["", "89x", &"8".repeat(31), "８"] {
            assert_eq!(
                EidPrefix::parse(bad),
                Err(IdError::EidPrefix { value: bad.into() })
            );
        }
        // Long input is echoed truncated.
        let long = "9".repeat(1000);
        assert!(matches!(Eid::parse(&long), Err(IdError::Eid { value, .. }) if value.len() == 64));
    }

    #[test]
    fn prefix_matching() {
        let eid = Eid::parse(VALID[0]).unwrap();
        assert!(eid.has_prefix(&EidPrefix::parse("89049032").unwrap()));
        assert!(eid.has_prefix(&EidPrefix::parse("890490321").unwrap()));
        assert!(eid.has_prefix(&EidPrefix::parse(&VALID[0][..30]).unwrap()));
        assert!(!eid.has_prefix(&EidPrefix::parse("89049033").unwrap()));
        assert!(!eid.has_prefix(&EidPrefix::parse("890490322").unwrap()));
        assert_eq!(EidPrefix::sgp26_test_eum().as_str(), "89049032");
        assert_eq!(EidPrefix::sgp26_test_eum().len(), 8);
    }

    #[test]
    fn serde_uses_the_digits() {
        let eid = Eid::parse(VALID[1]).unwrap();
        let json = serde_json::to_string(&eid).unwrap();
        assert_eq!(json, format!("\"{}\"", VALID[1]));
        assert_eq!(serde_json::from_str::<Eid>(&json).unwrap(), eid);
        assert!(serde_json::from_str::<Eid>("\"89049032123451234512345678901234\"").is_err());
        assert!(serde_json::from_str::<Eid>("42").is_err());
        let prefix = EidPrefix::parse("8904").unwrap();
        let json = serde_json::to_string(&prefix).unwrap();
        assert_eq!(serde_json::from_str::<EidPrefix>(&json).unwrap(), prefix);
    }

    proptest! {
        #[test]
        fn any_body_gives_a_valid_eid(body in "[0-9]{30}") {
            let eid = Eid::from_body(&body).unwrap();
            prop_assert!(eid.to_string().starts_with(&body));
            prop_assert_eq!(Eid::parse(&eid.to_string()).unwrap(), eid);
            prop_assert!(eid.has_prefix(&EidPrefix::parse(&body).unwrap()));
        }

        #[test]
        fn single_digit_changes_are_detected(body in "[0-9]{30}", pos in 0usize..32, delta in 1u8..10) {
            let good = Eid::from_body(&body).unwrap().to_string();
            let mut bytes = good.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let bad = String::from_utf8(bytes).unwrap();
            prop_assert!(Eid::parse(&bad).is_err());
        }

        #[test]
        fn prefix_order_is_string_order(a in "[0-9]{1,30}", b in "[0-9]{1,30}") {
            let (pa, pb) = (EidPrefix::parse(&a).unwrap(), EidPrefix::parse(&b).unwrap());
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
        }
    }
}
