//! Identifiers of the SGP.22 download (ES9+) and ordering (ES2+) protocols.

use std::fmt;
use std::str::FromStr;

use rand::{CryptoRng, RngExt};

use crate::ascii::Ascii;
use crate::error::IdError;

/// The matching id of an order: what the end user's activation code carries.
///
/// 1 to 64 characters of `[A-Za-z0-9-]`, stored inline (no heap).
/// Generated ids are unguessable (100 bits of randomness) and use only the
/// alphabet real LPAs accept: groups of upper-case letters and digits joined
/// by `-`, like `4X7QK-2M9ZD-PL3RW-8HJ5T`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchingId(Ascii<64>);

/// Alphabet of generated matching ids: Crockford base32 (no I, L, O, U).
const MATCHING_ID_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl MatchingId {
    /// Validates a matching id received from an operator or a device.
    pub fn new(value: impl AsRef<str>) -> Result<Self, IdError> {
        let value = value.as_ref();
        let ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        match Ascii::new(value.as_bytes()) {
            Some(text) if ok => Ok(Self(text)),
            _ => Err(IdError::MatchingId),
        }
    }

    /// Generates a fresh unguessable matching id (4 groups of 5 characters)
    /// from the caller's generator.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut text = [0u8; 23];
        for (i, c) in text.iter_mut().enumerate() {
            *c = if i % 6 == 5 {
                b'-'
            } else {
                MATCHING_ID_ALPHABET[rng.random_range(0..MATCHING_ID_ALPHABET.len())]
            };
        }
        Self::new(std::str::from_utf8(&text).unwrap_or_default())
            .unwrap_or_else(|_| unreachable!("generated from the matching id alphabet"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for MatchingId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&str> for MatchingId {
    type Error = IdError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl FromStr for MatchingId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl From<MatchingId> for String {
    fn from(value: MatchingId) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for MatchingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MatchingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MatchingId({:?})", self.as_str())
    }
}

serde_as_text!(
    MatchingId,
    "a matching id of 1 to 64 characters [A-Za-z0-9-]"
);

/// The id of one ES9+ download session (SGP.22 `TransactionId`, 1..=16 bytes).
///
/// On the JSON binding (and in serde) it travels as upper-case hex; inside
/// ASN.1 structures as the raw octets. The SM-DP+ generates 16 random bytes.
/// Stored inline (no heap).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TransactionId {
    bytes: [u8; 16],
    len: u8,
}

impl TransactionId {
    /// Wraps raw octets received inside an ASN.1 structure.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        if bytes.is_empty() || bytes.len() > 16 {
            return Err(IdError::TransactionId);
        }
        let mut out = [0u8; 16];
        out[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            bytes: out,
            len: bytes.len() as u8,
        })
    }

    /// Parses the hex form used on the JSON binding (either case).
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        if text.len() > 32 {
            return Err(IdError::TransactionId);
        }
        let bytes = hex::decode(text).map_err(|_| IdError::TransactionId)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random 16-byte transaction id from the caller's generator.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self { bytes, len: 16 }
    }

    /// The raw octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Upper-case hex, as on the JSON binding.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.as_bytes())
    }
}

impl PartialOrd for TransactionId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TransactionId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl FromStr for TransactionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::from_hex(s)
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({})", self.to_hex())
    }
}

impl fmt::Display for TransactionId {
    /// Upper-case hex, written without a heap allocation (this is how serde
    /// writes the id into every ES9+ answer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut text = [0u8; 32];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.as_bytes()) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0F)];
        }
        let len = self.as_bytes().len() * 2;
        f.write_str(std::str::from_utf8(&text[..len]).map_err(|_| fmt::Error)?)
    }
}

serde_as_text!(TransactionId, "a transaction id of 1 to 16 bytes in hex");

/// The identity of an operator (the ES2+ `functionRequesterIdentifier`):
/// 1 to 64 visible ASCII characters, stored inline (no heap).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(Ascii<64>);

impl OperatorId {
    /// Validates an operator id.
    pub fn new(value: impl AsRef<str>) -> Result<Self, IdError> {
        let value = value.as_ref();
        let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
        match Ascii::new(value.as_bytes()) {
            Some(text) if ok => Ok(Self(text)),
            _ => Err(IdError::OperatorId),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for OperatorId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&str> for OperatorId {
    type Error = IdError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl FromStr for OperatorId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl From<OperatorId> for String {
    fn from(value: OperatorId) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperatorId({:?})", self.as_str())
    }
}

serde_as_text!(
    OperatorId,
    "an operator id of 1 to 64 visible ASCII characters"
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn generated_matching_ids_are_valid_and_distinct() {
        let mut rng = rand::rng();
        let a = MatchingId::generate(&mut rng);
        let b = MatchingId::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 23);
        assert_eq!(MatchingId::new(a.as_str()).unwrap(), a);
        let groups: Vec<&str> = a.as_str().split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|c| MATCHING_ID_ALPHABET.contains(&c)))
        );
    }

    #[test]
    fn generation_follows_the_injected_generator() {
        let mut r1 = StdRng::seed_from_u64(7);
        let mut r2 = StdRng::seed_from_u64(7);
        assert_eq!(MatchingId::generate(&mut r1), MatchingId::generate(&mut r2));
        assert_eq!(
            TransactionId::generate(&mut r1),
            TransactionId::generate(&mut r2)
        );
        // Through a trait object too, as sans-IO cores hold one.
        let dyn_rng: &mut dyn rand::CryptoRng = &mut r1;
        assert_eq!(TransactionId::generate(dyn_rng).as_bytes().len(), 16);
    }

    #[test]
    fn matching_id_rules() {
        assert!(MatchingId::new("04386-AGYFT-A74Y8-3F815").is_ok());
        assert!(MatchingId::new("a".repeat(64)).is_ok());
        for bad in ["", "a b", "x$y", "é", "a\0"] {
            assert_eq!(MatchingId::new(bad), Err(IdError::MatchingId), "{bad:?}");
        }
        assert_eq!(MatchingId::new("a".repeat(65)), Err(IdError::MatchingId));
        let m = MatchingId::new("AB-12").unwrap();
        assert_eq!(String::from(m.clone()), "AB-12");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"AB-12\"");
        assert_eq!(serde_json::from_str::<MatchingId>("\"AB-12\"").unwrap(), m);
        assert!(serde_json::from_str::<MatchingId>("\"AB 12\"").is_err());
        assert_eq!(format!("{m:?}"), "MatchingId(\"AB-12\")");
    }

    #[test]
    fn transaction_id_hex() {
        let t = TransactionId::from_hex("0a0B").unwrap();
        assert_eq!(t.as_bytes(), &[0x0A, 0x0B]);
        assert_eq!(t.to_hex(), "0A0B");
        assert_eq!(t.to_string(), "0A0B");
        assert_eq!(format!("{t:?}"), "TransactionId(0A0B)");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"0A0B\"");
        assert_eq!(
            serde_json::from_str::<TransactionId>("\"0a0b\"").unwrap(),
            t
        );
        assert_eq!(TransactionId::from_hex(""), Err(IdError::TransactionId));
        assert_eq!(TransactionId::from_hex("zz"), Err(IdError::TransactionId));
        assert_eq!(TransactionId::from_hex("abc"), Err(IdError::TransactionId));
        assert_eq!(
            TransactionId::from_hex(&"00".repeat(17)),
            Err(IdError::TransactionId)
        );
        assert_eq!(TransactionId::from_bytes(&[]), Err(IdError::TransactionId));
        assert!(TransactionId::from_bytes(&[0; 16]).is_ok());
        let full = TransactionId::from_bytes(&[
            0xF0, 0x0F, 0xA5, 0x5A, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xFF,
        ])
        .unwrap();
        assert_eq!(full.to_string(), hex::encode_upper(full.as_bytes()));
        assert_eq!(full.to_string(), full.to_hex());
        assert!(
            TransactionId::from_bytes(&[0; 1]).unwrap()
                < TransactionId::from_bytes(&[0; 2]).unwrap()
        );
    }

    #[test]
    fn operator_id_rules() {
        assert_eq!(
            OperatorId::new("op-1.example").unwrap().as_str(),
            "op-1.example"
        );
        for bad in ["", "a b", "é", "tab\t", &"o".repeat(65)] {
            assert_eq!(OperatorId::new(bad), Err(IdError::OperatorId), "{bad:?}");
        }
        let op: OperatorId = "op".parse().unwrap();
        assert_eq!(serde_json::to_string(&op).unwrap(), "\"op\"");
        assert_eq!(serde_json::from_str::<OperatorId>("\"op\"").unwrap(), op);
    }
}
