//! Subscription identities that validate on construction: the ICCID (ITU-T
//! E.118, with its Luhn check digit) and the IMSI (3GPP TS 23.003), with the
//! byte codings a profile package uses for them.
//!
//! Codings:
//! - EF.ICCID (ETSI TS 102 221) and SGP.22 `Iccid`: 10 bytes of BCD with the
//!   nibbles of each byte swapped, padded with `F`.
//! - SAIP `ProfileHeader.iccid`: 10 bytes of BCD in reading order (not
//!   swapped), padded with `F` (as the GSMA TS.48 packages and pySim use it).
//! - EF.IMSI (3GPP TS 31.102 4.2.2): a length byte, then the identity type
//!   and parity nibble followed by the digits, nibble-swapped, `F`-padded to 9 bytes.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An ICCID: 19 or 20 decimal digits whose last digit is the Luhn check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iccid(String);

impl Iccid {
    /// Validates a full ICCID (19 or 20 digits, last one the Luhn check digit).
    pub fn new(digits: &str) -> Result<Self, Error> {
        if !(19..=20).contains(&digits.len()) {
            return Err(Error::IccidLength {
                expected: "19 or 20",
                found: digits.len(),
            });
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::IccidNotDigits);
        }
        let (body, check) = digits.split_at(digits.len() - 1);
        let expected = luhn_digit(body);
        let found = check.as_bytes()[0] - b'0';
        if expected != found {
            return Err(Error::IccidCheckDigit { expected, found });
        }
        Ok(Iccid(digits.to_owned()))
    }

    /// Builds an ICCID from its 18 or 19 digit body by appending the Luhn digit.
    pub fn from_body(body: &str) -> Result<Self, Error> {
        if !(18..=19).contains(&body.len()) {
            return Err(Error::IccidLength {
                expected: "18 or 19 (body without check digit)",
                found: body.len(),
            });
        }
        if !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::IccidNotDigits);
        }
        let mut digits = body.to_owned();
        digits.push(char::from(b'0' + luhn_digit(body)));
        Ok(Iccid(digits))
    }

    /// Decodes the nibble-swapped BCD coding of EF.ICCID and SGP.22.
    pub fn from_bcd(bytes: &[u8]) -> Result<Self, Error> {
        Self::new(&decode_bcd(bytes, true)?)
    }

    /// Decodes the in-order BCD coding of the SAIP profile header.
    pub fn from_header_bcd(bytes: &[u8]) -> Result<Self, Error> {
        Self::new(&decode_bcd(bytes, false)?)
    }

    /// The digits, check digit included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Nibble-swapped BCD padded with `F` to 10 bytes (EF.ICCID, SGP.22 `Iccid`).
    pub fn to_bcd(&self) -> [u8; 10] {
        encode_bcd(&self.0, true)
    }

    /// In-order BCD padded with `F` to 10 bytes (SAIP `ProfileHeader.iccid`).
    pub fn to_header_bcd(&self) -> [u8; 10] {
        encode_bcd(&self.0, false)
    }
}

impl FromStr for Iccid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Iccid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IMSI: 6 to 15 decimal digits (MCC, MNC, MSIN), with the MNC length when known.
///
/// The MNC length (2 or 3) cannot be read from the digits; it is what EF.AD
/// of the USIM announces. An `Imsi` built without it leaves EF.AD unchanged
/// when personalising.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Imsi {
    digits: String,
    mnc_len: Option<u8>,
}

impl Imsi {
    /// Validates an IMSI of 6 to 15 digits with unknown MNC length.
    pub fn new(digits: &str) -> Result<Self, Error> {
        if !(6..=15).contains(&digits.len()) {
            return Err(Error::ImsiLength {
                found: digits.len(),
            });
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::ImsiNotDigits);
        }
        Ok(Imsi {
            digits: digits.to_owned(),
            mnc_len: None,
        })
    }

    /// Validates an IMSI and records the length of its MNC (2 or 3 digits).
    pub fn with_mnc_len(digits: &str, mnc_len: usize) -> Result<Self, Error> {
        if !(2..=3).contains(&mnc_len) {
            return Err(Error::MncLength { found: mnc_len });
        }
        let mut imsi = Self::new(digits)?;
        imsi.mnc_len = Some(mnc_len as u8);
        Ok(imsi)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// The mobile country code (first three digits).
    pub fn mcc(&self) -> &str {
        &self.digits[..3]
    }

    /// The MNC length, if known.
    pub fn mnc_len(&self) -> Option<usize> {
        self.mnc_len.map(usize::from)
    }

    /// The mobile network code, if the MNC length is known.
    pub fn mnc(&self) -> Option<&str> {
        self.mnc_len().map(|n| &self.digits[3..3 + n])
    }

    /// The same IMSI with the MNC length set.
    pub fn set_mnc_len(self, mnc_len: usize) -> Result<Self, Error> {
        Self::with_mnc_len(&self.digits, mnc_len)
    }

    /// EF.IMSI content (TS 31.102 4.2.2): 9 bytes, length byte first, `FF` padded.
    pub fn to_ef_imsi(&self) -> [u8; 9] {
        let digits = self.digits.as_bytes();
        // First nibble: identity type 1 (IMSI) with the odd-parity bit.
        let parity = if digits.len() % 2 == 1 { 0x9 } else { 0x1 };
        let mut nibbles = Vec::with_capacity(16);
        nibbles.push(parity);
        nibbles.extend(digits.iter().map(|d| d - b'0'));
        if nibbles.len() % 2 == 1 {
            nibbles.push(0xF);
        }
        let mut out = [0xFF; 9];
        out[0] = (nibbles.len() / 2) as u8;
        for (i, pair) in nibbles.chunks(2).enumerate() {
            out[1 + i] = (pair[1] << 4) | pair[0];
        }
        out
    }

    /// Decodes EF.IMSI content (at least the length byte and the bytes it announces).
    pub fn from_ef_imsi(content: &[u8]) -> Result<Self, Error> {
        let (&len, rest) = content.split_first().ok_or(Error::ImsiCoding {
            reason: "empty file",
        })?;
        let len = usize::from(len);
        if len == 0 || len > 8 || rest.len() < len {
            return Err(Error::ImsiCoding {
                reason: "length byte out of range",
            });
        }
        let mut nibbles = rest[..len].iter().flat_map(|b| [b & 0x0F, b >> 4]);
        let first = nibbles.next().unwrap_or(0);
        if first & 0x7 != 0x1 {
            return Err(Error::ImsiCoding {
                reason: "identity type is not IMSI",
            });
        }
        let mut digits = String::with_capacity(15);
        let mut ended = false;
        for n in nibbles {
            match (n, ended) {
                (0..=9, false) => digits.push(char::from(b'0' + n)),
                (0xF, _) => ended = true,
                _ => {
                    return Err(Error::ImsiCoding {
                        reason: "invalid BCD digit",
                    });
                }
            }
        }
        let odd = first & 0x8 != 0;
        if odd != (digits.len() % 2 == 1) {
            return Err(Error::ImsiCoding {
                reason: "parity bit does not match the number of digits",
            });
        }
        Self::new(&digits)
    }
}

impl FromStr for Imsi {
    type Err = Error;

    /// Accepts plain digits (`001010123456063`, MNC length unknown) or the
    /// dashed form `MCC-MNC-MSIN` (`001-01-0123456063`) that also fixes the
    /// MNC length.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('-').collect();
        match parts.as_slice() {
            [digits] => Self::new(digits),
            [mcc, mnc, msin] if mcc.len() == 3 => {
                Self::with_mnc_len(&format!("{mcc}{mnc}{msin}"), mnc.len())
            }
            _ => Err(Error::ImsiNotDigits),
        }
    }
}

impl fmt::Display for Imsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

/// The Luhn check digit (ISO/IEC 7812) of a string of decimal digits.
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

/// Decodes the in-order BCD of a profile header ICCID to its digits without
/// checking the Luhn digit (templates may carry placeholders).
pub(crate) fn header_iccid_digits(bytes: &[u8]) -> Result<String, Error> {
    decode_bcd(bytes, false)
}

/// Decodes swapped BCD (EF.ICCID) to its digits without checking the Luhn digit.
pub(crate) fn swapped_bcd_digits(bytes: &[u8]) -> Result<String, Error> {
    decode_bcd(bytes, true)
}

/// ICCID digits as BCD, the two ways SIM and RSP data carry them: swapped
/// (EF.ICCID and SGP.22 `Iccid`: the first digit in the low nibble) and in
/// order (a profile header `iccid`), padded with `F` to 10 bytes. Decoding
/// does not check the Luhn digit; [`Iccid`] does.
pub mod bcd {
    use crate::error::Error;

    /// Digits of swapped BCD, up to the `F` padding.
    pub fn swapped_digits(bytes: &[u8]) -> Result<String, Error> {
        super::decode_bcd(bytes, true)
    }

    /// Digits of in-order BCD, up to the `F` padding.
    pub fn in_order_digits(bytes: &[u8]) -> Result<String, Error> {
        super::decode_bcd(bytes, false)
    }

    /// Up to 20 decimal digits as 10 bytes of swapped BCD (`F` padded);
    /// a character that is not a digit is coded as its low nibble.
    pub fn swapped_bytes(digits: &str) -> [u8; 10] {
        super::encode_bcd(digits, true)
    }
}

/// Decodes BCD digits followed by optional `F` padding.
fn decode_bcd(bytes: &[u8], swapped: bool) -> Result<String, Error> {
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
                _ => return Err(Error::IccidBcd),
            }
        }
    }
    Ok(digits)
}

/// Encodes up to 20 digits as 10 bytes of BCD padded with `F`.
fn encode_bcd(digits: &str, swapped: bool) -> [u8; 10] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert_eq!(luhn_digit("7992739871"), 3);
        assert_eq!(luhn_digit("894944999999999004"), 9);
        assert_eq!(luhn_digit("8900012345678901234"), 1);
    }

    #[test]
    fn bcd_codings_round_trip_and_refuse_garbage() {
        for digits in ["8949449999999990049", "89000123456789012341"] {
            assert_eq!(
                bcd::swapped_digits(&bcd::swapped_bytes(digits)).unwrap(),
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
        // A nibble that is no digit, or a digit after the padding, is refused.
        assert_eq!(bcd::swapped_digits(&[0xA1]), Err(Error::IccidBcd));
        assert_eq!(bcd::swapped_digits(&[0xF1, 0x23]), Err(Error::IccidBcd));
        // Encoding never panics on characters that are not digits.
        let _ = bcd::swapped_bytes("89ab\u{0}!");
    }

    #[test]
    fn iccid_validation() {
        let iccid = Iccid::new("8949449999999990049").unwrap();
        assert_eq!(iccid.as_str(), "8949449999999990049");
        assert_eq!(
            Iccid::new("8949449999999990048"),
            Err(Error::IccidCheckDigit {
                expected: 9,
                found: 8
            })
        );
        assert!(matches!(
            Iccid::new("894944999999999004"),
            Err(Error::IccidLength { found: 18, .. })
        ));
        assert_eq!(
            Iccid::new("894944999999999004a"),
            Err(Error::IccidNotDigits)
        );
        assert_eq!(Iccid::from_body("894944999999999004").unwrap(), iccid);
        assert!(Iccid::from_body("89494499999999900").is_err());
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
        assert_eq!(Iccid::from_bcd(&[0x98, 0xA4]), Err(Error::IccidBcd));
        // Digits after padding are refused.
        assert_eq!(Iccid::from_bcd(&[0x98, 0x1F]), Err(Error::IccidBcd));
    }

    #[test]
    fn imsi_ef_coding() {
        let imsi = Imsi::new("001010123456063").unwrap();
        assert_eq!(
            imsi.to_ef_imsi(),
            [0x08, 0x09, 0x10, 0x10, 0x10, 0x32, 0x54, 0x06, 0x36]
        );
        assert_eq!(Imsi::from_ef_imsi(&imsi.to_ef_imsi()).unwrap(), imsi);
        let even = Imsi::new("26201123456789").unwrap();
        let ef = even.to_ef_imsi();
        assert_eq!(ef[0], 8);
        assert_eq!(ef[1], 0x21);
        assert_eq!(ef[8], 0xF9);
        assert_eq!(Imsi::from_ef_imsi(&ef).unwrap(), even);
        let short = Imsi::new("001010").unwrap();
        let ef = short.to_ef_imsi();
        assert_eq!(ef[0], 4);
        assert_eq!(&ef[5..], &[0xFF; 4]);
        assert_eq!(Imsi::from_ef_imsi(&ef).unwrap(), short);
    }

    #[test]
    fn imsi_validation() {
        assert_eq!(Imsi::new("00101"), Err(Error::ImsiLength { found: 5 }));
        assert_eq!(
            Imsi::new("0010101234560631"),
            Err(Error::ImsiLength { found: 16 })
        );
        assert_eq!(Imsi::new("00101x"), Err(Error::ImsiNotDigits));
        assert_eq!(
            Imsi::with_mnc_len("001010123456063", 4),
            Err(Error::MncLength { found: 4 })
        );
        let dashed: Imsi = "310-260-123456789".parse().unwrap();
        assert_eq!(dashed.as_str(), "310260123456789");
        assert_eq!(dashed.mnc(), Some("260"));
        assert_eq!(dashed.mcc(), "310");
        let plain: Imsi = "001010123456063".parse().unwrap();
        assert_eq!(plain.mnc_len(), None);
        assert!("1-2-3".parse::<Imsi>().is_err());
        assert!(Imsi::from_ef_imsi(&[]).is_err());
        assert!(Imsi::from_ef_imsi(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Identity type other than IMSI.
        assert!(Imsi::from_ef_imsi(&[0x02, 0x0A, 0x10]).is_err());
        // Parity says odd, digits are even.
        assert!(Imsi::from_ef_imsi(&[0x04, 0x09, 0x10, 0x10, 0xF0]).is_err());
    }
}
