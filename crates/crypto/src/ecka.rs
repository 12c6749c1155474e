//! ECKA: elliptic-curve key agreement (ECDH on P-256) for the profile download.
//!
//! During `getBoundProfilePackage` the SM-DP+ and the eUICC each make a
//! one-time key pair (otPK/otSK.DP.ECKA, otPK/otSK.EUICC.ECKA), exchange the
//! public halves and compute the same shared secret, from which
//! [`crate::kdf`] derives the BSP session keys. Peer points are validated
//! (SEC1 shape, on the curve, not infinity) before use; invalid ones give
//! [`Error::InvalidPoint`].

use aws_lc_rs::agreement;

use crate::ecdsa::{UNCOMPRESSED_POINT_LEN, VerifyingKey, check_sec1_shape};
use crate::error::{Error, Result};
use crate::key::{KeySource, SharedSecret};

/// A one-time P-256 key pair for a single key agreement (otPK/otSK.*.ECKA).
pub struct OneTimeKeyPair {
    private: agreement::PrivateKey,
    public: [u8; UNCOMPRESSED_POINT_LEN],
}

impl OneTimeKeyPair {
    /// Generates a fresh random key pair.
    pub fn generate() -> Result<Self> {
        let private = agreement::PrivateKey::generate(&agreement::ECDH_P256)
            .map_err(|_| Error::Backend("one-time key generation"))?;
        Self::from_private(private)
    }

    /// Builds a key pair from a 32-byte big-endian private scalar (known-answer
    /// tests, or a key restored from a store).
    pub fn from_scalar(scalar: &[u8]) -> Result<Self> {
        if scalar.len() != 32 {
            return Err(Error::InvalidKeyLength {
                expected: 32,
                actual: scalar.len(),
            });
        }
        let private = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, scalar)
            .map_err(|_| Error::InvalidPrivateKey("scalar out of range for P-256"))?;
        Self::from_private(private)
    }

    /// The public key as an uncompressed SEC1 point (the `5F49` value in RSP).
    pub fn public_sec1(&self) -> &[u8; UNCOMPRESSED_POINT_LEN] {
        &self.public
    }

    /// ECDH with the peer's SEC1 public key (uncompressed or compressed).
    pub fn agree(&self, peer_public_sec1: &[u8]) -> Result<SharedSecret> {
        agree_with(&self.private, peer_public_sec1)
    }

    fn from_private(private: agreement::PrivateKey) -> Result<Self> {
        let public = private
            .compute_public_key()
            .map_err(|_| Error::Backend("public key computation"))?;
        let public = public
            .as_ref()
            .try_into()
            .map_err(|_| Error::Backend("public key length"))?;
        Ok(Self { private, public })
    }
}

impl std::fmt::Debug for OneTimeKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneTimeKeyPair")
            .field("public", &crate::ecdsa::HexBytes(&self.public))
            .finish_non_exhaustive()
    }
}

/// ECDH between a long-lived key (file or token) and a peer, validating the
/// peer's point here first so that every key source sees only valid points.
pub fn agree_with_key_source(key: &dyn KeySource, peer_public_sec1: &[u8]) -> Result<SharedSecret> {
    validate_point(peer_public_sec1)?;
    key.ecdh(peer_public_sec1)
}

/// Checks that `sec1` is an uncompressed or compressed SEC1 encoding of a
/// point on P-256 other than the point at infinity.
pub fn validate_point(sec1: &[u8]) -> Result<()> {
    VerifyingKey::from_sec1(sec1).map(|_| ())
}

/// ECDH with an aws-lc private key, mapping a bad peer point to [`Error::InvalidPoint`].
pub(crate) fn agree_with(
    private: &agreement::PrivateKey,
    peer_public_sec1: &[u8],
) -> Result<SharedSecret> {
    check_sec1_shape(peer_public_sec1)?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer_public_sec1);
    agreement::agree(
        private,
        peer,
        Error::InvalidPoint("not a point on P-256"),
        SharedSecret::from_slice,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SoftwareKey;

    #[test]
    fn one_time_pairs_agree() {
        let a = OneTimeKeyPair::generate().unwrap();
        let b = OneTimeKeyPair::generate().unwrap();
        assert_eq!(
            a.agree(b.public_sec1()).unwrap(),
            b.agree(a.public_sec1()).unwrap()
        );
        let long_lived = SoftwareKey::generate().unwrap();
        assert_eq!(
            agree_with_key_source(&long_lived, a.public_sec1()).unwrap(),
            a.agree(long_lived.public_key_sec1()).unwrap()
        );
    }

    #[test]
    fn compressed_peer_points_work() {
        let a = OneTimeKeyPair::generate().unwrap();
        let b = OneTimeKeyPair::generate().unwrap();
        let pb = b.public_sec1();
        let mut compressed = vec![0x02 | (pb[64] & 1)];
        compressed.extend_from_slice(&pb[1..33]);
        assert_eq!(a.agree(&compressed).unwrap(), a.agree(pb).unwrap());
    }

    #[test]
    fn invalid_points_are_rejected() {
        let a = OneTimeKeyPair::generate().unwrap();
        let mut off_curve = *a.public_sec1();
        off_curve[64] ^= 1;
        for bad in [
            &off_curve[..],
            &[0u8][..],
            &[],
            &off_curve[..64],
            &[4u8; 65][..],
        ] {
            assert!(
                matches!(a.agree(bad), Err(Error::InvalidPoint(_))),
                "{bad:02x?}"
            );
            assert!(matches!(validate_point(bad), Err(Error::InvalidPoint(_))));
        }
        // Hybrid form (06/07) and SubjectPublicKeyInfo are not accepted.
        let mut hybrid = *a.public_sec1();
        hybrid[0] = 0x06 | (hybrid[64] & 1);
        assert!(matches!(a.agree(&hybrid), Err(Error::InvalidPoint(_))));
    }

    #[test]
    fn bad_scalars_are_rejected() {
        assert!(OneTimeKeyPair::from_scalar(&[0u8; 32]).is_err());
        assert!(OneTimeKeyPair::from_scalar(&[0xFF; 32]).is_err());
        assert!(matches!(
            OneTimeKeyPair::from_scalar(&[1u8; 31]),
            Err(Error::InvalidKeyLength { .. })
        ));
    }
}
