//! Where private keys live: the [`KeySource`] abstraction and its software
//! implementation.
//!
//! The SM-DP+ signs with its DPauth/DPpb keys and the eUICC with its eUICC key;
//! both may keep those keys in a file (development, tests, the virtual eUICC)
//! or inside a PKCS#11 token (production SM-DP+). Callers hold an
//! `Arc<dyn KeySource>` and never see the scalar.
//!
//! [`SoftwareKey`] keeps the key in process memory (aws-lc's `EVP_PKEY`, whose
//! memory aws-lc wipes when freed); PEM/DER exports are returned in
//! [`Zeroizing`] buffers. The PKCS#11 implementation is in [`crate::pkcs11`].

use std::path::Path;
use std::sync::OnceLock;

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::ecdsa::{RAW_SIGNATURE_LEN, UNCOMPRESSED_POINT_LEN, VerifyingKey};
use crate::error::{Error, Result};

/// Length of an ECDH shared secret on P-256 (the x coordinate).
pub const SHARED_SECRET_LEN: usize = 32;

/// A private P-256 key that can sign (ECDSA with SHA-256) and agree (ECDH).
///
/// Implementations must be usable from many threads at once.
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// The public key as an uncompressed SEC1 point (65 bytes).
    fn public_key_sec1(&self) -> &[u8];

    /// Signs `message` (hashed here with SHA-256) and returns raw `r || s`.
    fn sign_raw(&self, message: &[u8]) -> Result<[u8; RAW_SIGNATURE_LEN]>;

    /// ECDH with a peer's SEC1 public key; returns the shared x coordinate.
    ///
    /// Invalid peer points give [`Error::InvalidPoint`].
    fn ecdh(&self, peer_public_sec1: &[u8]) -> Result<SharedSecret>;
}

/// An ECDH shared secret (the 32-byte x coordinate), wiped from memory on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; SHARED_SECRET_LEN]);

impl SharedSecret {
    /// Wraps raw secret bytes (for example from a PKCS#11 derive or a test vector).
    pub fn from_bytes(bytes: [u8; SHARED_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// Wraps a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; SHARED_SECRET_LEN] =
            bytes.try_into().map_err(|_| Error::InvalidKeyLength {
                expected: SHARED_SECRET_LEN,
                actual: bytes.len(),
            })?;
        Ok(Self(arr))
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8; SHARED_SECRET_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// A P-256 key pair held in process memory.
///
/// Parsed once; signing and ECDH then cost no parsing or allocation beyond
/// the backend's own.
pub struct SoftwareKey {
    signing: EcdsaKeyPair,
    /// The same key for ECDH, made from the signing key on first use: most
    /// keys only sign (an eUICC's, an SM-DP+'s), and reading the key into a
    /// second object re-checks it with a full scalar multiplication.
    agreement: OnceLock<agreement::PrivateKey>,
    public: [u8; UNCOMPRESSED_POINT_LEN],
}

/// PEM label of PKCS#8 private keys.
const PEM_PKCS8: &str = "PRIVATE KEY";
/// PEM label of SEC1 (RFC 5915) EC private keys.
const PEM_SEC1: &str = "EC PRIVATE KEY";

impl SoftwareKey {
    /// Generates a fresh random P-256 key pair.
    pub fn generate() -> Result<Self> {
        // Used as generated: exporting and reading it back would only check
        // again what the backend just made.
        let signing = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| Error::Backend("key generation"))?;
        Self::from_signing(signing)
    }

    /// Loads a private key from DER: PKCS#8 `PrivateKeyInfo` or SEC1 `ECPrivateKey`.
    ///
    /// The key must be on P-256 ([`Error::InvalidPrivateKey`] otherwise).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let signing =
            EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|_| Error::InvalidPrivateKey("not a PKCS#8 or SEC1 P-256 private key"))?;
        Self::from_signing(signing)
    }

    fn from_signing(signing: EcdsaKeyPair) -> Result<Self> {
        let public = signing
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| Error::Backend("public key export"))?;
        Ok(Self {
            signing,
            agreement: OnceLock::new(),
            public,
        })
    }

    /// The key for ECDH (read from the signing key the first time).
    fn agreement(&self) -> Result<&agreement::PrivateKey> {
        if let Some(key) = self.agreement.get() {
            return Ok(key);
        }
        let pkcs8 = self
            .signing
            .to_pkcs8v1()
            .map_err(|_| Error::Backend("key export"))?;
        let key =
            agreement::PrivateKey::from_private_key_der(&agreement::ECDH_P256, pkcs8.as_ref())
                .map_err(|_| Error::Backend("ECDH key"))?;
        Ok(self.agreement.get_or_init(|| key))
    }

    /// Loads a private key from PEM text.
    ///
    /// Accepts `PRIVATE KEY` (PKCS#8, as written by `openssl genpkey` and
    /// rcgen) and `EC PRIVATE KEY` (SEC1, as written by `openssl ecparam
    /// -genkey`, which may precede it with an `EC PARAMETERS` block). Other
    /// blocks in the text are ignored; encrypted keys are refused.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let block = find_pem_block(pem)?;
        let (label, der) =
            der::pem::decode_vec(block.as_bytes()).map_err(|e| Error::Pem(e.to_string()))?;
        let der = Zeroizing::new(der);
        if label != PEM_PKCS8 && label != PEM_SEC1 {
            return Err(Error::Pem(format!("unexpected PEM label {label:?}")));
        }
        Self::from_der(&der)
    }

    /// Reads a PEM (or, failing that, DER) private key file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains("-----BEGIN") => Self::from_pem(text),
            _ => Self::from_der(&bytes),
        }
    }

    /// Exports the key as PKCS#8 DER (v1, without the optional public key).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let doc = self
            .signing
            .to_pkcs8v1()
            .map_err(|_| Error::Backend("key export"))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// Exports the key as a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der()?;
        der::pem::encode_string(PEM_PKCS8, der::pem::LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|e| Error::Pem(e.to_string()))
    }

    /// Exports the key as SEC1 `ECPrivateKey` DER (RFC 5915).
    pub fn to_sec1_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let der = self
            .signing
            .private_key()
            .as_der()
            .map_err(|_| Error::Backend("key export"))?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    /// The public key, parsed for verification.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_sec1(&self.public)
    }
}

impl KeySource for SoftwareKey {
    fn public_key_sec1(&self) -> &[u8] {
        &self.public
    }

    fn sign_raw(&self, message: &[u8]) -> Result<[u8; RAW_SIGNATURE_LEN]> {
        // aws-lc ignores the RNG argument and uses its own DRBG.
        let sig = self
            .signing
            .sign(&SystemRandom::new(), message)
            .map_err(|_| Error::Backend("signing"))?;
        sig.as_ref()
            .try_into()
            .map_err(|_| Error::Backend("signature length"))
    }

    fn ecdh(&self, peer_public_sec1: &[u8]) -> Result<SharedSecret> {
        crate::ecka::agree_with(self.agreement()?, peer_public_sec1)
    }
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("public", &crate::ecdsa::HexBytes(&self.public))
            .finish_non_exhaustive()
    }
}

/// Cuts the first private-key PEM block out of `pem`, skipping others such as
/// `EC PARAMETERS`.
fn find_pem_block(pem: &str) -> Result<&str> {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(Error::Pem(
            "encrypted private keys are not supported".into(),
        ));
    }
    for label in [PEM_PKCS8, PEM_SEC1] {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        if let Some(start) = pem.find(&begin) {
            let tail = &pem[start..];
            let stop = tail
                .find(&end)
                .ok_or_else(|| Error::Pem(format!("missing {end}")))?;
            return Ok(&tail[..stop + end.len()]);
        }
    }
    Err(Error::Pem(
        "no PRIVATE KEY or EC PRIVATE KEY block found".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecdsa;

    #[test]
    fn generate_sign_verify() {
        let key = SoftwareKey::generate().unwrap();
        assert_eq!(key.public_key_sec1().len(), 65);
        let sig = key.sign_raw(b"hello").unwrap();
        ecdsa::verify_raw(key.public_key_sec1(), b"hello", &sig).unwrap();
        key.verifying_key()
            .unwrap()
            .verify_raw(b"hello", &sig)
            .unwrap();
    }

    #[test]
    fn pkcs8_pem_round_trip() {
        let key = SoftwareKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SoftwareKey::from_pem(&pem).unwrap();
        assert_eq!(back.public_key_sec1(), key.public_key_sec1());
        let der = key.to_pkcs8_der().unwrap();
        let back = SoftwareKey::from_der(&der).unwrap();
        assert_eq!(back.public_key_sec1(), key.public_key_sec1());
    }

    #[test]
    fn sec1_der_and_pem_load() {
        let key = SoftwareKey::generate().unwrap();
        let sec1 = key.to_sec1_der().unwrap();
        let back = SoftwareKey::from_der(&sec1).unwrap();
        assert_eq!(back.public_key_sec1(), key.public_key_sec1());
        let pem = der::pem::encode_string(PEM_SEC1, der::pem::LineEnding::LF, &sec1).unwrap();
        // As `openssl ecparam -genkey` writes it: parameters first.
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{pem}"
        );
        let back = SoftwareKey::from_pem(&with_params).unwrap();
        assert_eq!(back.public_key_sec1(), key.public_key_sec1());
    }

    #[test]
    fn ecdh_is_symmetric() {
        let a = SoftwareKey::generate().unwrap();
        let b = SoftwareKey::generate().unwrap();
        let ab = a.ecdh(b.public_key_sec1()).unwrap();
        let ba = b.ecdh(a.public_key_sec1()).unwrap();
        assert_eq!(ab, ba);
        assert!(matches!(a.ecdh(&[4u8; 65]), Err(Error::InvalidPoint(_))));
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(matches!(
            SoftwareKey::from_der(&[0x30, 0x00]),
            Err(Error::InvalidPrivateKey(_))
        ));
        assert!(matches!(
            SoftwareKey::from_pem("garbage"),
            Err(Error::Pem(_))
        ));
        assert!(matches!(
            SoftwareKey::from_pem("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n"),
            Err(Error::Pem(_))
        ));
        assert!(matches!(
            SoftwareKey::from_pem(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n"
            ),
            Err(Error::Pem(_))
        ));
        let dbg = format!("{:?}", SharedSecret::from_bytes([7; 32]));
        assert!(!dbg.contains('7'));
    }
}
