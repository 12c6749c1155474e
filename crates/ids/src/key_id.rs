//! Key identifiers of certificates, above all a CI's: the value of its
//! subjectKeyIdentifier, which SGP.22 calls the CI PKId and eUICCs list in
//! `euiccCiPKIdListForVerification` / `euiccCiPKIdListForSigning`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::IdError;

/// The longest key identifier accepted, in bytes.
///
/// RFC 5280 does not bound a key identifier; the usual ones are 20 bytes
/// (SHA-1, RFC 5280 method 1, every GSMA CI so far) and RFC 7093 allows a
/// whole SHA-512 hash: 64 bytes.
pub const CI_KEY_ID_MAX_LEN: usize = 64;

/// A certificate key identifier (subjectKeyIdentifier or
/// authorityKeyIdentifier value): 1 to [`CI_KEY_ID_MAX_LEN`] bytes.
///
/// `ferrosim_pki::KeyId` is this type: every certificate's key identifier
/// uses it, and a CI's is the CI PKId of the protocol. Stored inline (no
/// heap). `Display`, `FromStr` and serde use upper-case hex (either case is
/// read); ordering is that of the bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CiKeyId {
    bytes: [u8; CI_KEY_ID_MAX_LEN],
    len: u8,
}

impl CiKeyId {
    /// Validates key identifier bytes (for example an OCTET STRING received
    /// in `euiccCiPKIdList` or a certificate extension).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        if bytes.is_empty() {
            return Err(IdError::CiKeyId { problem: "empty" });
        }
        if bytes.len() > CI_KEY_ID_MAX_LEN {
            return Err(IdError::CiKeyId {
                problem: "longer than 64 bytes",
            });
        }
        let mut out = [0u8; CI_KEY_ID_MAX_LEN];
        out[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            bytes: out,
            len: bytes.len() as u8,
        })
    }

    /// Parses the hex form (either case).
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        if text.len() > 2 * CI_KEY_ID_MAX_LEN {
            return Err(IdError::CiKeyId {
                problem: "longer than 64 bytes",
            });
        }
        let bytes = hex::decode(text).map_err(|_| IdError::CiKeyId {
            problem: "not an even number of hex digits",
        })?;
        Self::from_bytes(&bytes)
    }

    /// The identifier's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Upper-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.as_bytes())
    }
}

impl AsRef<[u8]> for CiKeyId {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialOrd for CiKeyId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CiKeyId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl TryFrom<&[u8]> for CiKeyId {
    type Error = IdError;
    fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
        Self::from_bytes(bytes)
    }
}

impl FromStr for CiKeyId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::from_hex(s)
    }
}

impl fmt::Display for CiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CiKeyId({self})")
    }
}

serde_as_text!(CiKeyId, "a key identifier in hex");

#[cfg(test)]
mod tests {
    use super::*;

    // The subjectKeyIdentifier of the GSMA SGP.26 test CI.
    const TEST_CI: &str = "F54172BDF98A95D65CBEB88A38A1C11D800A85C3";

    #[test]
    fn key_id_is_hex() {
        assert_eq!(
            CiKeyId::from_bytes(&[0xF5, 0x41]).unwrap().to_string(),
            "F541"
        );
        let id: CiKeyId = TEST_CI.to_lowercase().parse().unwrap();
        assert_eq!(id.to_string(), TEST_CI);
        assert_eq!(id.as_bytes().len(), 20);
        assert_eq!(CiKeyId::from_bytes(id.as_ref()).unwrap(), id);
        assert_eq!(format!("{id:?}"), format!("CiKeyId({TEST_CI})"));
    }

    #[test]
    fn bad_key_ids_are_refused() {
        assert_eq!(
            CiKeyId::from_bytes(&[]),
            Err(IdError::CiKeyId { problem: "empty" })
        );
        assert!(CiKeyId::from_bytes(&[0; 64]).is_ok());
        assert_eq!(
            CiKeyId::from_bytes(&[0; 65]),
            Err(IdError::CiKeyId {
                problem: "longer than 64 bytes"
            })
        );
        assert!(CiKeyId::from_hex("").is_err());
        assert!(CiKeyId::from_hex("F5A").is_err());
        assert!(CiKeyId::from_hex("zz").is_err());
        assert!(CiKeyId::from_hex(&"00".repeat(65)).is_err());
    }

    #[test]
    fn order_and_equality_are_those_of_the_bytes() {
        let id = |b: &[u8]| CiKeyId::from_bytes(b).unwrap();
        assert!(id(&[0x00]) < id(&[0x00, 0x00]));
        assert!(id(&[0x01]) > id(&[0x00, 0xFF]));
        assert_ne!(id(&[0x00]), id(&[0x00, 0x00]));
        let json = serde_json::to_string(&id(&[0xAB, 0x01])).unwrap();
        assert_eq!(json, "\"AB01\"");
        assert_eq!(
            serde_json::from_str::<CiKeyId>(&json).unwrap(),
            id(&[0xAB, 0x01])
        );
    }
}
