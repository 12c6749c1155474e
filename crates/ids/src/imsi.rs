//! The IMSI (3GPP TS 23.003): MCC, MNC and MSIN, with the EF.IMSI coding
//! (3GPP TS 31.102 4.2.2): a length byte, then the identity type and parity
//! nibble followed by the digits, nibble-swapped, `F`-padded to 9 bytes.

use std::fmt;
use std::str::FromStr;

use crate::ascii::Ascii;
use crate::error::IdError;

/// An IMSI: 6 to 15 decimal digits (MCC, MNC, MSIN), with the MNC length when known.
///
/// The MNC length (2 or 3) cannot be read from the digits; it is what EF.AD
/// of the USIM announces. An `Imsi` built without it leaves EF.AD unchanged
/// when personalising.
///
/// `Display` gives the plain digits. The text form of serde (and
/// [`Imsi::to_text`]) is `MCC-MNC-MSIN` when the MNC length is known, so
/// that it survives a round trip; [`FromStr`] reads both forms.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Imsi {
    digits: Ascii<15>,
    mnc_len: Option<u8>,
}

impl Imsi {
    /// Validates an IMSI of 6 to 15 digits with unknown MNC length.
    pub fn new(digits: &str) -> Result<Self, IdError> {
        if !(6..=15).contains(&digits.len()) {
            return Err(IdError::ImsiLength {
                found: digits.len(),
            });
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::ImsiNotDigits);
        }
        let digits = Ascii::new(digits.as_bytes()).ok_or(IdError::ImsiNotDigits)?;
        Ok(Imsi {
            digits,
            mnc_len: None,
        })
    }

    /// Validates an IMSI and records the length of its MNC (2 or 3 digits).
    pub fn with_mnc_len(digits: &str, mnc_len: usize) -> Result<Self, IdError> {
        if !(2..=3).contains(&mnc_len) {
            return Err(IdError::MncLength { found: mnc_len });
        }
        let mut imsi = Self::new(digits)?;
        imsi.mnc_len = Some(mnc_len as u8);
        Ok(imsi)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        self.digits.as_str()
    }

    /// The mobile country code (first three digits).
    pub fn mcc(&self) -> &str {
        &self.as_str()[..3]
    }

    /// The MNC length, if known.
    pub fn mnc_len(&self) -> Option<usize> {
        self.mnc_len.map(usize::from)
    }

    /// The mobile network code, if the MNC length is known.
    pub fn mnc(&self) -> Option<&str> {
        self.mnc_len().map(|n| &self.as_str()[3..3 + n])
    }

    /// The same IMSI with the MNC length set.
    pub fn set_mnc_len(self, mnc_len: usize) -> Result<Self, IdError> {
        Self::with_mnc_len(self.as_str(), mnc_len)
    }

    /// `MCC-MNC-MSIN` when the MNC length is known, else the plain digits:
    /// the text [`FromStr`] reads back to an equal value.
    pub fn to_text(&self) -> String {
        match self.mnc_len() {
            Some(n) => {
                let d = self.as_str();
                format!("{}-{}-{}", &d[..3], &d[3..3 + n], &d[3 + n..])
            }
            None => self.as_str().to_owned(),
        }
    }

    /// EF.IMSI content (TS 31.102 4.2.2): 9 bytes, length byte first, `FF` padded.
    pub fn to_ef_imsi(&self) -> [u8; 9] {
        let digits = self.as_str().as_bytes();
        // First nibble: identity type 1 (IMSI) with the odd-parity bit.
        let parity = if digits.len() % 2 == 1 { 0x9 } else { 0x1 };
        let mut nibbles = [0xFu8; 16];
        nibbles[0] = parity;
        for (n, d) in nibbles[1..].iter_mut().zip(digits) {
            *n = d - b'0';
        }
        let used = (digits.len() + 1).div_ceil(2);
        let mut out = [0xFF; 9];
        out[0] = used as u8;
        for (i, pair) in nibbles.chunks(2).take(used).enumerate() {
            out[1 + i] = (pair[1] << 4) | pair[0];
        }
        out
    }

    /// Decodes EF.IMSI content (at least the length byte and the bytes it announces).
    pub fn from_ef_imsi(content: &[u8]) -> Result<Self, IdError> {
        let (&len, rest) = content.split_first().ok_or(IdError::ImsiCoding {
            reason: "empty file",
        })?;
        let len = usize::from(len);
        if len == 0 || len > 8 || rest.len() < len {
            return Err(IdError::ImsiCoding {
                reason: "length byte out of range",
            });
        }
        let mut nibbles = rest[..len].iter().flat_map(|b| [b & 0x0F, b >> 4]);
        let first = nibbles.next().unwrap_or(0);
        if first & 0x7 != 0x1 {
            return Err(IdError::ImsiCoding {
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
                    return Err(IdError::ImsiCoding {
                        reason: "invalid BCD digit",
                    });
                }
            }
        }
        let odd = first & 0x8 != 0;
        if odd != (digits.len() % 2 == 1) {
            return Err(IdError::ImsiCoding {
                reason: "parity bit does not match the number of digits",
            });
        }
        Self::new(&digits)
    }
}

impl FromStr for Imsi {
    type Err = IdError;

    /// Accepts plain digits (`001010123456063`, MNC length unknown) or the
    /// dashed form `MCC-MNC-MSIN` (`001-01-0123456063`) that also fixes the
    /// MNC length.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('-');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(digits), None, None, None) => Self::new(digits),
            (Some(mcc), Some(mnc), Some(msin), None) if mcc.len() == 3 => {
                Self::with_mnc_len(&format!("{mcc}{mnc}{msin}"), mnc.len())
            }
            _ => Err(IdError::ImsiNotDigits),
        }
    }
}

impl fmt::Display for Imsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Imsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imsi")
            .field("digits", &self.as_str())
            .field("mnc_len", &self.mnc_len)
            .finish()
    }
}

impl serde::Serialize for Imsi {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

impl<'de> serde::Deserialize<'de> for Imsi {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Imsi::new("00101"), Err(IdError::ImsiLength { found: 5 }));
        assert_eq!(
            Imsi::new("0010101234560631"),
            Err(IdError::ImsiLength { found: 16 })
        );
        assert_eq!(Imsi::new("00101x"), Err(IdError::ImsiNotDigits));
        assert_eq!(
            Imsi::with_mnc_len("001010123456063", 4),
            Err(IdError::MncLength { found: 4 })
        );
        let dashed: Imsi = "310-260-123456789".parse().unwrap();
        assert_eq!(dashed.as_str(), "310260123456789");
        assert_eq!(dashed.mnc(), Some("260"));
        assert_eq!(dashed.mcc(), "310");
        assert_eq!(dashed.to_text(), "310-260-123456789");
        assert_eq!(dashed.to_string(), "310260123456789");
        let plain: Imsi = "001010123456063".parse().unwrap();
        assert_eq!(plain.mnc_len(), None);
        assert_eq!(plain.mnc(), None);
        assert_eq!(plain.clone().set_mnc_len(2).unwrap().mnc(), Some("01"));
        assert!("1-2-3".parse::<Imsi>().is_err());
        assert!("001-01-2-3".parse::<Imsi>().is_err());
        assert_eq!(
            Imsi::from_ef_imsi(&[]),
            Err(IdError::ImsiCoding {
                reason: "empty file"
            })
        );
        assert!(Imsi::from_ef_imsi(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(Imsi::from_ef_imsi(&[0x02, 0x0A, 0x10]).is_err());
        assert!(Imsi::from_ef_imsi(&[0x04, 0x09, 0x10, 0x10, 0xF0]).is_err());
        assert!(Imsi::from_ef_imsi(&[0x02, 0x09, 0xA0]).is_err());
        assert_eq!(
            format!("{dashed:?}"),
            "Imsi { digits: \"310260123456789\", mnc_len: Some(3) }"
        );
    }

    #[test]
    fn serde_keeps_the_mnc_length() {
        for text in ["310-260-123456789", "001-01-0123456063", "001010123456063"] {
            let imsi: Imsi = text.parse().unwrap();
            let json = serde_json::to_string(&imsi).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Imsi>(&json).unwrap(), imsi);
        }
        assert!(serde_json::from_str::<Imsi>("\"00101\"").is_err());
    }
}
