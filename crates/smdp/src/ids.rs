//! Identifiers of the download protocol, as validating newtypes.
//!
//! Each type checks its value once, on construction, so the rest of the
//! SM-DP+ can rely on it (the same idea as rustls' `ServerName`).

use std::fmt;

use rand::{CryptoRng, RngExt};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A value that does not have the shape its protocol field requires.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// A matching id must be 1..=64 characters of `[A-Za-z0-9-]`.
    #[error("matching id must be 1..=64 characters of [A-Za-z0-9-]")]
    MatchingId,
    /// A transaction id must be 1..=16 bytes (2..=32 hex digits).
    #[error("transactionId must be 1..=16 bytes given as hex")]
    TransactionId,
    /// An operator id must be 1..=64 printable ASCII characters without spaces.
    #[error("operator id must be 1..=64 visible ASCII characters")]
    OperatorId,
}

/// The matching id of an order: what the end user's activation code carries.
///
/// Generated ids are unguessable (100 bits of randomness) and use only the
/// alphabet real LPAs accept: groups of upper-case letters and digits joined
/// by `-`, like `4X7QK-2M9ZD-PL3RW-8HJ5T`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MatchingId(String);

/// Alphabet of generated matching ids: Crockford base32 (no I, L, O, U).
const MATCHING_ID_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl MatchingId {
    /// Validates a matching id received from an operator or a device.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(Self(value))
        } else {
            Err(IdError::MatchingId)
        }
    }

    /// Generates a fresh unguessable matching id (4 groups of 5 characters).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut s = String::with_capacity(23);
        for group in 0..4 {
            if group > 0 {
                s.push('-');
            }
            for _ in 0..5 {
                let i = rng.random_range(0..MATCHING_ID_ALPHABET.len());
                s.push(char::from(MATCHING_ID_ALPHABET[i]));
            }
        }
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MatchingId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<MatchingId> for String {
    fn from(value: MatchingId) -> Self {
        value.0
    }
}

impl fmt::Display for MatchingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one ES9+ download session (SGP.22 `TransactionId`, 1..=16 bytes).
///
/// On the JSON binding it travels as upper-case hex; inside ASN.1 structures
/// as the raw octets. The SM-DP+ generates 16 random bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(Vec<u8>);

impl TransactionId {
    /// Wraps raw octets received inside an ASN.1 structure.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        if bytes.is_empty() || bytes.len() > 16 {
            return Err(IdError::TransactionId);
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Parses the hex form used on the JSON binding (either case).
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        let bytes = hex::decode(text).map_err(|_| IdError::TransactionId)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random 16-byte transaction id.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = vec![0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Upper-case hex, as on the JSON binding.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(&self.0)
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({})", self.to_hex())
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The identity of an operator (the ES2+ `functionRequesterIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OperatorId(String);

impl OperatorId {
    /// Validates an operator id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let ok =
            !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(value))
        } else {
            Err(IdError::OperatorId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OperatorId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<OperatorId> for String {
    fn from(value: OperatorId) -> Self {
        value.0
    }
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_matching_ids_are_valid_and_distinct() {
        let mut rng = rand::rng();
        let a = MatchingId::generate(&mut rng);
        let b = MatchingId::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 23);
        assert_eq!(MatchingId::new(a.as_str()).unwrap(), a);
    }

    #[test]
    fn matching_id_rules() {
        assert!(MatchingId::new("04386-AGYFT-A74Y8-3F815").is_ok());
        assert!(MatchingId::new("").is_err());
        assert!(MatchingId::new("a b").is_err());
        assert!(MatchingId::new("x$y").is_err());
        assert!(MatchingId::new("é").is_err());
        assert!(MatchingId::new("a".repeat(65)).is_err());
    }

    #[test]
    fn transaction_id_hex() {
        let t = TransactionId::from_hex("0a0B").unwrap();
        assert_eq!(t.as_bytes(), &[0x0A, 0x0B]);
        assert_eq!(t.to_hex(), "0A0B");
        assert!(TransactionId::from_hex("").is_err());
        assert!(TransactionId::from_hex("zz").is_err());
        assert!(TransactionId::from_hex(&"00".repeat(17)).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in ".{0,80}") {
            let _ = MatchingId::new(s.clone());
            let _ = TransactionId::from_hex(&s);
            let _ = OperatorId::new(s);
        }
    }
}
