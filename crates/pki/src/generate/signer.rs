//! Bridges `ferrosim-crypto` key sources to rcgen, so certificates can be
//! issued with keys rcgen never sees (software keys loaded from files, keys
//! in a PKCS#11 token).

use ferrosim_crypto::ecdsa::raw_to_der;
use ferrosim_crypto::key::KeySource;
use rcgen::{PKCS_ECDSA_P256_SHA256, PublicKeyData, SignatureAlgorithm, SigningKey};

use super::issue::check_public_key;
use crate::error::Result;

/// An rcgen signing key backed by a [`KeySource`] (ECDSA P-256, SHA-256).
///
/// The key source signs raw `r||s` as SGP.22 does; X.509 wants DER, so the
/// signature is re-encoded here.
pub struct KeySourceSigner<'a> {
    key: &'a dyn KeySource,
    public_key_sec1: Vec<u8>,
}

impl<'a> KeySourceSigner<'a> {
    /// Wraps a key source, reading its public key once.
    pub fn new(key: &'a dyn KeySource) -> Result<Self> {
        let public_key_sec1 = key.public_key_sec1().to_vec();
        check_public_key(&public_key_sec1)?;
        Ok(KeySourceSigner {
            key,
            public_key_sec1,
        })
    }
}

impl PublicKeyData for KeySourceSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key_sec1
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for KeySourceSigner<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let raw = self
            .key
            .sign_raw(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        raw_to_der(&raw).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// A subject public key given as a SEC1 P-256 point (the private half is elsewhere).
pub(crate) struct ExternalPublicKey(Vec<u8>);

impl ExternalPublicKey {
    /// Checks the point and wraps it.
    pub(crate) fn new(public_key_sec1: &[u8]) -> Result<Self> {
        check_public_key(public_key_sec1)?;
        Ok(ExternalPublicKey(public_key_sec1.to_vec()))
    }
}

impl PublicKeyData for ExternalPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}
