//! Signed checkpoints: "at time T the log ended with entry N whose hash was
//! H", signed with ECDSA P-256, so that cutting off the tail is detected.

use ferrosim_crypto::KeySource;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry::hex_32;

/// Domain separation of the signed message.
const DOMAIN: &[u8] = b"ferrosim-audit-checkpoint-v1\0";

/// A signed statement about the log's last entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last entry's sequence number when it was made.
    pub seq: u64,
    /// That entry's hash.
    #[serde(with = "hex_32")]
    pub hash: [u8; 32],
    /// When it was made (Unix milliseconds).
    pub at: i64,
    /// The signer's public key, uncompressed SEC1 (hex in JSON).
    #[serde(with = "hex_vec")]
    pub public_key: Vec<u8>,
    /// ECDSA P-256 SHA-256 signature, raw `r || s` (hex in JSON).
    #[serde(with = "hex_vec")]
    pub signature: Vec<u8>,
}

/// A checkpoint that cannot be made or does not verify.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The key could not sign.
    #[error("signing the checkpoint failed: {0}")]
    Sign(String),
    /// The signature does not verify under the checkpoint's key.
    #[error("checkpoint {seq}: the signature does not verify")]
    BadSignature {
        /// The checkpoint's sequence number.
        seq: u64,
    },
    /// Signed by a key other than the one expected.
    #[error("checkpoint {seq}: signed by another key")]
    OtherKey {
        /// The checkpoint's sequence number.
        seq: u64,
    },
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32], at: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 48);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at.to_be_bytes());
    m
}

/// Signs a checkpoint of entry `(seq, hash)` at `at` with `key`.
pub fn sign_checkpoint(
    key: &dyn KeySource,
    seq: u64,
    hash: [u8; 32],
    at: i64,
) -> Result<Checkpoint, CheckpointError> {
    let sig = key
        .sign_raw(&checkpoint_message(seq, &hash, at))
        .map_err(|e| CheckpointError::Sign(e.to_string()))?;
    Ok(Checkpoint {
        seq,
        hash,
        at,
        public_key: key.public_key_sec1().to_vec(),
        signature: sig.to_vec(),
    })
}

impl Checkpoint {
    /// Checks the signature; with `expected_key`, also that the checkpoint
    /// was signed by that key (otherwise anyone could sign a checkpoint of a
    /// rewritten log with a key of their own).
    pub fn verify(&self, expected_key: Option<&[u8]>) -> Result<(), CheckpointError> {
        if let Some(k) = expected_key
            && k != self.public_key.as_slice()
        {
            return Err(CheckpointError::OtherKey { seq: self.seq });
        }
        ferrosim_crypto::ecdsa::verify_raw(
            &self.public_key,
            &checkpoint_message(self.seq, &self.hash, self.at),
            &self.signature,
        )
        .map_err(|_| CheckpointError::BadSignature { seq: self.seq })
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ferrosim_crypto::SoftwareKey;

    #[test]
    fn signed_checkpoints_verify_and_forgeries_do_not() {
        let key = SoftwareKey::generate().unwrap();
        let cp = sign_checkpoint(&key, 7, [3; 32], 1000).unwrap();
        cp.verify(Some(key.public_key_sec1())).unwrap();
        let mut moved = cp.clone();
        moved.seq = 5;
        assert_eq!(
            moved.verify(None),
            Err(CheckpointError::BadSignature { seq: 5 })
        );
        let other = SoftwareKey::generate().unwrap();
        assert_eq!(
            cp.verify(Some(other.public_key_sec1())),
            Err(CheckpointError::OtherKey { seq: 7 })
        );
        let json = serde_json::to_string(&cp).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), cp);
    }
}
