//! The ICCID (ITU-T E.118): the identity of a profile, with its Luhn check
//! digit and the two byte codings SIM and RSP data use.
//!
//! Codings:
//! - EF.ICCID (ETSI TS 102 221) and SGP.22 `Iccid`: 10 bytes of BCD with the
//!   nibbles of each byte swapped, padded with `F`.
//! - SAIP `ProfileHeader.iccid`: 10 bytes of BCD in reading order (not
//!   swapped), padded with `F` (as the GSMA TS.48 packages and pySim use it).
//!
//! ES2+ clients often send a 19-digit ICCID as the 20 characters of its
//! padded coding (`…F`); [`Iccid::new`] accepts that and keeps the 19 digits.

use std::fmt;
use std::str::FromStr;

use crate::ascii::Ascii;
use crate::error::IdError;

/// An ICCID: 19 or 20 decimal digits whose last digit is the Luhn check digit.
///
/// Stored inline as its digits (no heap). `Display` and serde give the digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iccid(Ascii<20>);

impl Iccid {
    /// Validates a full ICCID (19 or 20 digits, last one the Luhn check digit).
    ///
    /// A 19-digit ICCID padded to 20 characters with a trailing `F` or `f`
    /// is accepted and normalised to its 19 digits.
    pub fn new(digits: &str) -> Result<Self, IdError> {
        let digits = match digits.as_bytes() {
            [body @ .., b'F' | b'f'] if body.len() == 19 => &digits[..19],
            _ => digits,
        };
        if !(19..=20).contains(&digits.len()) {
            return Err(IdError::IccidLength {
                expected: "19 or 20",
                found: digits.len(),
            });
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::IccidNotDigits);
        }
        let (body, check) = digits.split_at(digits.len() - 1);
        let expected = luhn_digit(body);
        let found = check.as_bytes()[0] - b'0';
        if expected != found {
            return Err(IdError::IccidCheckDigit { expected, found });
        }
        Ascii::new(digits.as_bytes())
            .map(Iccid)
            .ok_or(IdError::IccidNotDigits)
    }

    /// Builds an ICCID from its 18 or 19 digit body by appending the Luhn digit.
    pub fn from_body(body: &str) -> Result<Self, IdError> {
        if !(18..=19).contains(&body.len()) {
            return Err(IdError::IccidLength {
                expected: "18 or 19 (body without check digit)",
                found: body.len(),
            });
        }
        if !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::IccidNotDigits);
        }
        let mut digits = body.to_owned();
        digits.push(char::from(b'0' + luhn_digit(body)));
        Self::new(&digits)
    }

    /// Decodes the nibble-swapped BCD coding of EF.ICCID and SGP.22.
    pub fn from_bcd(bytes: &[u8]) -> Result<Self, IdError> {
        Self::new(&bcd::swapped_digits(bytes)?)
    }

    /// Decodes the in-order BCD coding of the SAIP profile header.
    pub fn from_header_bcd(bytes: &[u8]) -> Result<Self, IdError> {
        Self::new(&bcd::in_order_digits(bytes)?)
    }

    /// The digits, check digit included.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Nibble-swapped BCD padded with `F` to 10 bytes (EF.ICCID, SGP.22 `Iccid`).
    pub fn to_bcd(&self) -> [u8; 10] {
        bcd::swapped_bytes(self.as_str())
    }

    /// In-order BCD padded with `F` to 10 bytes (SAIP `ProfileHeader.iccid`).
    pub fn to_header_bcd(&self) -> [u8; 10] {
        bcd::in_order_bytes(self.as_str())
    }
}

impl FromStr for Iccid {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Iccid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Iccid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iccid({:?})", self.as_str())
    }
}

serde_as_text!(Iccid, "an ICCID of 19 or 20 digits");

/// Compares the digits with text, so code and tests holding digits as text
/// can check a typed ICCID without converting.
impl PartialEq<str> for Iccid {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Iccid {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Iccid {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Iccid> for String {
    fn eq(&self, other: &Iccid) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Iccid> for &str {
    fn eq(&self, other: &Iccid) -> bool {
        *self == other.as_str()
    }
}

/// Reads as its digits (`Option<Iccid>::as_deref` gives the digits), as a
/// validated ICCID is always valid text.
impl std::ops::Deref for Iccid {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Iccid {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// The Luhn check digit (ISO/IEC 7812) of a string of decimal digits.
///
/// Characters that are not digits count as their value modulo 10 (the
/// function never fails); [`Iccid`] refuses them before calling it.
pub fn luhn_digit(body: &str) -> u8 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.wrapping_sub(b'0') % 10);
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// ICCID digits as BCD, the two ways SIM and RSP data carry them: swapped
/// (EF.ICCID and SGP.22 `Iccid`: the first digit in the low nibble) and in
/// order (a profile header `iccid`), padded with `F` to 10 bytes. Decoding
/// does not check the Luhn digit or the length (templates may carry
/// placeholders); [`Iccid`] does.
pub mod bcd {
    use crate::error::IdError;

    /// Digits of swapped BCD, up to the `F` padding.
    pub fn swapped_digits(bytes: &[u8]) -> Result<String, IdError> {
        decode(bytes, true)
    }

    /// Digits of in-order BCD, up to the `F` padding.
    pub fn in_order_digits(bytes: &[u8]) -> Result<String, IdError> {
        decode(bytes, false)
    }

    /// Up to 20 decimal digits as 10 bytes of swapped BCD (`F` padded);
    /// a character that is not a digit is coded as its low nibble.
    pub fn swapped_bytes(digits: &str) -> [u8; 10] {
        encode(digits, true)
    }

    /// Up to 20 decimal digits as 10 bytes of in-order BCD (`F` padded);
    /// a character that is not a digit is coded as its low nibble.
    pub fn in_order_bytes(digits: &str) -> [u8; 10] {
        encode(digits, false)
    }

    /// Decodes BCD digits followed by optional `F` padding.
    fn decode(bytes: &[u8], swapped: bool) -> Result<String, IdError> {
        let mut digits = String::with_capacity(bytes.len() * 2);
        let mut ended = false;
        for b in bytes {
            let (first, second) = if swapped {
                (b & 0x0F, b >> 4)
            } else {
                (b >> 4, b & 0x0F)
            };
            for n in [first, second] {
                match (n, ended) {
                    (0..=9, false) => digits.push(char::from(b'0' + n)),
                    (0xF, _) => ended = true,
                    _ => return Err(IdError::IccidBcd),
                }
            }
        }
        Ok(digits)
    }

    /// Encodes up to 20 digits as 10 bytes of BCD padded with `F`.
    fn encode(digits: &str, swapped: bool) -> [u8; 10] {
        let mut out = [0xFF; 10];
        for (i, d) in digits.bytes().take(20).enumerate() {
            let n = d.wrapping_sub(b'0') & 0x0F;
            let byte = &mut out[i / 2];
            let high = (i % 2 == 0) != swapped;
            *byte = if high {
                (*byte & 0x0F) | (n << 4)
            } else {
                (*byte & 0xF0) | n
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert_eq!(luhn_digit("7992739871"), 3);
        assert_eq!(luhn_digit("894944999999999004"), 9);
        assert_eq!(luhn_digit("8900012345678901234"), 1);
        assert_eq!(luhn_digit(""), 0);
    }

    #[test]
    fn bcd_codings_round_trip_and_refuse_garbage() {
        for digits in ["8949449999999990049", "89000123456789012341"] {
            assert_eq!(
                bcd::swapped_digits(&bcd::swapped_bytes(digits)).unwrap(),
                digits
            );
            assert_eq!(
                bcd::in_order_digits(&bcd::in_order_bytes(digits)).unwrap(),
                digits
            );
        }
        assert_eq!(
            bcd::swapped_bytes("8949449999999990049"),
            [0x98, 0x94, 0x44, 0x99, 0x99, 0x99, 0x99, 0x09, 0x40, 0xF9]
        );
        let in_order = [0x89, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0x01, 0x23, 0x41];
        assert_eq!(
            bcd::in_order_digits(&in_order).unwrap(),
            "89000123456789012341"
        );
        assert_eq!(bcd::swapped_digits(&[0x98, 0x10, 0xF5]).unwrap(), "89015");
        assert_eq!(bcd::swapped_digits(&[0xA1]), Err(IdError::IccidBcd));
        assert_eq!(bcd::swapped_digits(&[0xF1, 0x23]), Err(IdError::IccidBcd));
        let _ = bcd::swapped_bytes("89ab\u{0}!");
    }

    #[test]
    fn iccid_validation() {
        let iccid = Iccid::new("8949449999999990049").unwrap();
        assert_eq!(iccid.as_str(), "8949449999999990049");
        assert_eq!(
            Iccid::new("8949449999999990048"),
            Err(IdError::IccidCheckDigit {
                expected: 9,
                found: 8
            })
        );
        assert_eq!(
            Iccid::new("894944999999999004"),
            Err(IdError::IccidLength {
                expected: "19 or 20",
                found: 18
            })
        );
        assert_eq!(
            Iccid::new("894944999999999004a"),
            Err(IdError::IccidNotDigits)
        );
        assert_eq!(
            Iccid::new("８９4944999999999004"),
            Err(IdError::IccidLength {
                expected: "19 or 20",
                found: 22
            })
        );
        assert_eq!(Iccid::from_body("894944999999999004").unwrap(), iccid);
        assert!(matches!(
            Iccid::from_body("89494499999999900"),
            Err(IdError::IccidLength { found: 17, .. })
        ));
        assert_eq!(
            Iccid::from_body("89494499999999900x"),
            Err(IdError::IccidNotDigits)
        );
    }

    #[test]
    fn f_padded_text_is_normalised_to_19_digits() {
        let iccid = Iccid::new("8949449999999990049").unwrap();
        assert_eq!(Iccid::new("8949449999999990049F").unwrap(), iccid);
        assert_eq!(Iccid::new("8949449999999990049f").unwrap(), iccid);
        assert_eq!(
            "8949449999999990049F".parse::<Iccid>().unwrap().to_string(),
            "8949449999999990049"
        );
        assert_eq!(
            serde_json::from_str::<Iccid>("\"8949449999999990049F\"").unwrap(),
            iccid
        );
        // The padding does not excuse a wrong check digit or other garbage.
        assert_eq!(
            Iccid::new("8949449999999990048F"),
            Err(IdError::IccidCheckDigit {
                expected: 9,
                found: 8
            })
        );
        assert_eq!(
            Iccid::new("894944999999999004xF"),
            Err(IdError::IccidNotDigits)
        );
        // Only a single trailing F after exactly 19 characters is padding.
        assert!(matches!(
            Iccid::new("894944999999999004F"),
            Err(IdError::IccidNotDigits)
        ));
        assert!(matches!(
            Iccid::new("8949449999999990049FF"),
            Err(IdError::IccidLength { found: 21, .. })
        ));
        assert!(matches!(
            Iccid::new("89000123456789012341F"),
            Err(IdError::IccidLength { found: 21, .. })
        ));
        assert_eq!(
            Iccid::new("F8949449999999990049"),
            Err(IdError::IccidNotDigits)
        );
    }

    #[test]
    fn iccid_codings() {
        let iccid = Iccid::new("8949449999999990049").unwrap();
        assert_eq!(
            iccid.to_bcd(),
            [0x98, 0x94, 0x44, 0x99, 0x99, 0x99, 0x99, 0x09, 0x40, 0xF9]
        );
        assert_eq!(
            iccid.to_header_bcd(),
            [0x89, 0x49, 0x44, 0x99, 0x99, 0x99, 0x99, 0x90, 0x04, 0x9F]
        );
        assert_eq!(Iccid::from_bcd(&iccid.to_bcd()).unwrap(), iccid);
        assert_eq!(
            Iccid::from_header_bcd(&iccid.to_header_bcd()).unwrap(),
            iccid
        );
        let twenty = Iccid::new("89000123456789012341").unwrap();
        assert_eq!(Iccid::from_bcd(&twenty.to_bcd()).unwrap(), twenty);
        assert_eq!(
            Iccid::from_header_bcd(&twenty.to_header_bcd()).unwrap(),
            twenty
        );
        assert_eq!(Iccid::from_bcd(&[0x98, 0xA4]), Err(IdError::IccidBcd));
        assert_eq!(Iccid::from_bcd(&[0x98, 0x1F]), Err(IdError::IccidBcd));
        assert!(matches!(
            Iccid::from_bcd(&[0x98]),
            Err(IdError::IccidLength { found: 2, .. })
        ));
        assert_eq!(format!("{iccid:?}"), "Iccid(\"8949449999999990049\")");
        assert_eq!(
            serde_json::to_string(&iccid).unwrap(),
            "\"8949449999999990049\""
        );
    }
}
