//! Subscriber secrets a personalisation writes: the AKA key K and OPc, PINs,
//! PUKs and the ADM key. They validate on construction, never print their
//! value in `Debug`, and the keys are wiped from memory when dropped.

use std::fmt;
use std::str::FromStr;

use rand::CryptoRng;
use zeroize::Zeroize;

use crate::error::Error;

/// A 128-bit AKA secret: the subscriber key K or the derived operator key OPc.
#[derive(Clone, PartialEq, Eq)]
pub struct Key128([u8; 16]);

impl Key128 {
    /// Wraps 16 key bytes.
    pub fn new(bytes: [u8; 16]) -> Self {
        Key128(bytes)
    }

    /// Parses 32 hexadecimal digits; `field` names the value in errors.
    pub fn from_hex(field: &'static str, hex_str: &str) -> Result<Self, Error> {
        let mut bytes = hex::decode(hex_str.trim()).map_err(|_| Error::InvalidHex { field })?;
        if bytes.len() != 16 {
            let found = bytes.len();
            bytes.zeroize();
            return Err(Error::KeyLength {
                field,
                expected: 16,
                found,
            });
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&bytes);
        bytes.zeroize();
        Ok(Key128(key))
    }

    /// Draws a fresh key from a cryptographically secure generator.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0u8; 16];
        rng.fill_bytes(&mut key);
        Key128(key)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl From<[u8; 16]> for Key128 {
    fn from(bytes: [u8; 16]) -> Self {
        Key128(bytes)
    }
}

impl Drop for Key128 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key128(<redacted>)")
    }
}

/// A PIN (PIN1, PIN2): 4 to 8 decimal digits, stored as ASCII padded with `FF`
/// to the 8 bytes of `PINConfiguration.pinValue` (ETSI TS 102 221 9.5.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Pin([u8; 8]);

impl Pin {
    /// Validates a PIN of 4 to 8 digits; `field` names it in errors.
    pub fn new(field: &'static str, digits: &str) -> Result<Self, Error> {
        Ok(Pin(ascii_code(field, digits, 4, "4 to 8 digits")?))
    }

    /// The 8-byte coded value as stored in the profile.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl FromStr for Pin {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pin::new("PIN", s)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// A PUK (unblocking code): exactly 8 decimal digits stored as ASCII.
#[derive(Clone, PartialEq, Eq)]
pub struct Puk([u8; 8]);

impl Puk {
    /// Validates a PUK of 8 digits; `field` names it in errors.
    pub fn new(field: &'static str, digits: &str) -> Result<Self, Error> {
        Ok(Puk(ascii_code(field, digits, 8, "8 digits")?))
    }

    /// The 8-byte coded value as stored in the profile.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl FromStr for Puk {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Puk::new("PUK", s)
    }
}

impl fmt::Debug for Puk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Puk(<redacted>)")
    }
}

/// An administrative key (ADM1): 8 bytes, written either as 4 to 8 decimal
/// digits (ASCII, `FF`-padded, like a PIN) or as 16 hexadecimal digits giving
/// the raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AdmKey([u8; 8]);

impl AdmKey {
    /// Parses an ADM value in either notation; `field` names it in errors.
    pub fn new(field: &'static str, text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.len() == 16 {
            let bytes = hex::decode(text).map_err(|_| Error::InvalidHex { field })?;
            let mut key = [0u8; 8];
            key.copy_from_slice(&bytes);
            return Ok(AdmKey(key));
        }
        ascii_code(field, text, 4, "4 to 8 digits or 16 hex digits").map(AdmKey)
    }

    /// The 8-byte value as stored in the profile.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl FromStr for AdmKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AdmKey::new("ADM", s)
    }
}

impl fmt::Debug for AdmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdmKey(<redacted>)")
    }
}

/// Decodes an 8-byte PIN/PUK value: ASCII digits followed by `FF` padding.
/// Returns `None` when the value is not in that form (for example a raw ADM key).
pub fn decode_code_digits(value: &[u8]) -> Option<String> {
    let end = value.iter().position(|&b| b == 0xFF).unwrap_or(value.len());
    let (digits, padding) = value.split_at(end);
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || !padding.iter().all(|&b| b == 0xFF)
    {
        return None;
    }
    Some(digits.iter().map(|&b| char::from(b)).collect())
}

/// Checks a string of digits (length `min..=8`) and codes it as ASCII padded with `FF`.
fn ascii_code(
    field: &'static str,
    digits: &str,
    min: usize,
    expected: &'static str,
) -> Result<[u8; 8], Error> {
    let digits = digits.trim();
    if !(min..=8).contains(&digits.len()) {
        return Err(Error::CodeLength {
            field,
            expected,
            found: digits.len(),
        });
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::CodeNotDigits { field });
    }
    let mut out = [0xFF; 8];
    out[..digits.len()].copy_from_slice(digits.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn key_parsing() {
        let k = Key128::from_hex("K", "000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(k.as_bytes()[15], 0x0F);
        assert_eq!(
            Key128::from_hex("K", "0001"),
            Err(Error::KeyLength {
                field: "K",
                expected: 16,
                found: 2
            })
        );
        assert_eq!(
            Key128::from_hex("OPc", "zz"),
            Err(Error::InvalidHex { field: "OPc" })
        );
        assert_eq!(format!("{k:?}"), "Key128(<redacted>)");
    }

    #[test]
    fn random_keys_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = Key128::random(&mut rng);
        let b = Key128::random(&mut rng);
        assert_ne!(a, b);
    }

    #[test]
    fn codes() {
        assert_eq!(
            Pin::new("PIN1", "1234").unwrap().as_bytes(),
            b"1234\xFF\xFF\xFF\xFF"
        );
        assert_eq!(
            Pin::new("PIN1", "123"),
            Err(Error::CodeLength {
                field: "PIN1",
                expected: "4 to 8 digits",
                found: 3
            })
        );
        assert_eq!(
            Pin::new("PIN1", "12a4"),
            Err(Error::CodeNotDigits { field: "PIN1" })
        );
        assert_eq!(
            Puk::new("PUK1", "12345678").unwrap().as_bytes(),
            b"12345678"
        );
        assert!(Puk::new("PUK1", "1234567").is_err());
        assert_eq!(
            AdmKey::new("ADM1", "55555555").unwrap().as_bytes(),
            b"55555555"
        );
        assert_eq!(
            AdmKey::new("ADM1", "0102030405060708").unwrap().as_bytes(),
            &[1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            AdmKey::new("ADM1", "010203040506070z"),
            Err(Error::InvalidHex { field: "ADM1" })
        );
        assert_eq!(
            decode_code_digits(b"0000\xFF\xFF\xFF\xFF").as_deref(),
            Some("0000")
        );
        assert_eq!(decode_code_digits(&[1, 2, 3, 4, 5, 6, 7, 8]), None);
        assert_eq!(decode_code_digits(b"12\xFF3\xFF\xFF\xFF\xFF"), None);
    }
}
