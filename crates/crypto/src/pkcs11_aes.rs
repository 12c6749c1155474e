//! An AES-256 secret key inside a PKCS#11 token, used for AES-GCM: a
//! key-encryption key that never leaves the token (`CKA_SENSITIVE`, not
//! extractable). The token seals and opens the few short values given to it
//! (wrapped data keys); nonces and associated data come from the caller.

use std::path::Path;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::error::{Error, Result};
use crate::pkcs11::{SessionPool, ck};

/// Nonce length of AES-GCM here (96 bits).
pub const GCM_NONCE_LEN: usize = 12;
/// Tag length of AES-GCM here (128 bits), appended to the ciphertext.
pub const GCM_TAG_LEN: usize = 16;

/// The [`Error::Pkcs11Object`] text of a value that does not open
/// (changed, or sealed under another key).
pub const NOT_AUTHENTIC: &str = "the sealed value does not authenticate under this key";

/// An AES-256 key in a PKCS#11 token.
pub struct Pkcs11AesKey {
    pool: SessionPool,
    key: ObjectHandle,
    key_label: String,
    token_label: String,
}

impl std::fmt::Debug for Pkcs11AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11AesKey")
            .field("token", &self.token_label)
            .field("key", &self.key_label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11AesKey {
    /// Opens the AES secret key labelled `key_label` in the token labelled
    /// `token_label`, logging in with the user PIN; checks it seals and
    /// opens a probe.
    pub fn open(
        module: impl AsRef<Path>,
        token_label: &str,
        pin: &str,
        key_label: &str,
    ) -> Result<Self> {
        let pool = SessionPool::open(module.as_ref(), token_label, pin)?;
        let key = match pool.with_session(|s| find(s, key_label))?.as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::Pkcs11Object(format!(
                    "no AES secret key labelled {key_label:?}"
                )));
            }
            _ => {
                return Err(Error::Pkcs11Object(format!(
                    "several AES secret keys labelled {key_label:?}"
                )));
            }
        };
        let k = Self {
            pool,
            key,
            key_label: key_label.to_owned(),
            token_label: token_label.to_owned(),
        };
        let nonce = [7u8; GCM_NONCE_LEN];
        let sealed = k.seal(&nonce, b"probe", b"ferrosim")?;
        if k.open_sealed(&nonce, b"probe", &sealed)? != b"ferrosim" {
            return Err(Error::Pkcs11Object(format!(
                "key {key_label:?} does not open what it sealed"
            )));
        }
        Ok(k)
    }

    /// Generates a new AES-256 key in the token (sensitive, not
    /// extractable, for encryption and decryption only) and opens it.
    /// Refuses when a secret key with that label exists.
    pub fn generate(
        module: impl AsRef<Path>,
        token_label: &str,
        pin: &str,
        key_label: &str,
    ) -> Result<Self> {
        let module = module.as_ref();
        let pool = SessionPool::open(module, token_label, pin)?;
        pool.with_session(|s| {
            if !find(s, key_label)?.is_empty() {
                return Err(Error::Pkcs11Object(format!(
                    "a secret key labelled {key_label:?} already exists"
                )));
            }
            let template = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(key_label.as_bytes().to_vec()),
            ];
            s.generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(ck("generating an AES key"))?;
            Ok(())
        })?;
        drop(pool);
        Self::open(module, token_label, pin, key_label)
    }

    /// `plaintext` sealed with AES-GCM under this key: ciphertext || tag.
    pub fn seal(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let mut iv = *nonce;
        self.pool.with_session(|s| {
            let params = GcmParams::new(&mut iv, aad, (GCM_TAG_LEN as u64 * 8).into())
                .map_err(ck("AES-GCM parameters"))?;
            s.encrypt(&Mechanism::AesGcm(params), self.key, plaintext)
                .map_err(ck("AES-GCM encryption"))
        })
    }

    /// Opens what [`Pkcs11AesKey::seal`] made with the same nonce and
    /// associated data; a changed value, other associated data or another
    /// key is [`Error::Pkcs11Object`] with [`NOT_AUTHENTIC`] (tokens report
    /// it variously: `CKR_ENCRYPTED_DATA_INVALID`, or SoftHSM2's
    /// `CKR_GENERAL_ERROR`).
    pub fn open_sealed(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let mut iv = *nonce;
        self.pool.with_session(|s| {
            let params = GcmParams::new(&mut iv, aad, (GCM_TAG_LEN as u64 * 8).into())
                .map_err(ck("AES-GCM parameters"))?;
            s.decrypt(&Mechanism::AesGcm(params), self.key, sealed)
                .map_err(|e| match e {
                    // SoftHSM2 answers a wrong tag with CKR_GENERAL_ERROR.
                    CkError::Pkcs11(
                        RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::GeneralError
                        | RvError::FunctionFailed,
                        _,
                    ) => Error::Pkcs11Object(NOT_AUTHENTIC.into()),
                    other => ck("AES-GCM decryption")(other),
                })
        })
    }

    /// The key's `CKA_LABEL`.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }
}

fn find(session: &Session, label: &str) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(ck("finding objects"))
}
