//! Envelope encryption of secrets at rest (profile K, OPc, PIN/PUK, ADM
//! keys): each secret is sealed with AES-256-GCM under a *data key*; data
//! keys are stored only *wrapped* (AES-256-GCM) by a *key-encryption key*
//! (KEK) that lives outside the database (a file, or a key in a PKCS#11
//! token through [`KekCipher`]).
//!
//! - [`Keyring::seal`] binds a ciphertext to its place with associated data
//!   (say the ICCID and the column), so a sealed value copied to another row
//!   or column does not open.
//! - [`Keyring::rewrap`] re-wraps every data key under a new KEK without
//!   touching the sealed secrets: rotating the KEK is one small write, and
//!   instances can keep serving while it happens (a keyring holds every
//!   data key it has unwrapped; the old and new KEK identify themselves by
//!   [`Kek::id`]).
//! - Plaintexts and keys are wiped from memory when dropped.
//!
//! Formats: a sealed value is `1 || data key id (4 bytes, big-endian) ||
//! nonce (12) || ciphertext || tag (16)`; a wrapped data key is `1 || KEK id
//! (8) || nonce (12) || wrapped key (32) || tag (16)`, with the data key id
//! as associated data. Nonces are random (96 bits): a data key seals far
//! fewer than 2^32 values before a new one is made ([`Keyring::add_data_key`]).
//!
//! The store seals profile secrets with this when given a KEK
//! (`ferrosim_store::SqlStore::with_kek`), and re-seals rows in place for
//! rotation and migration; `ferrosim serve` and every command opening an
//! instance load the KEK (`[secrets] kek_file`, or a key in a PKCS#11
//! token), and `ferrosim keys` makes, shows and rotates the keys.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rand::CryptoRng;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const DEK_DOMAIN: &[u8] = b"ferrosim-dek-v1";

/// Why a secret could not be sealed or opened.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    /// The KEK file is not 32 bytes (raw) or 64 hex digits.
    #[error("key-encryption key: {0}")]
    BadKek(String),
    /// The value is not in the sealed format (truncated, unknown version).
    #[error("not a sealed value: {0}")]
    Malformed(&'static str),
    /// Sealed under a data key this keyring does not hold.
    #[error("data key {0} is unknown to this keyring")]
    UnknownDataKey(u32),
    /// Wrapped by another KEK than the keyring's.
    #[error("data key {dek} is wrapped by KEK {kek}, not by the one given")]
    OtherKek {
        /// The data key.
        dek: u32,
        /// The KEK id it names (hex).
        kek: String,
    },
    /// Authentication failed: the value was changed, belongs elsewhere
    /// (other associated data), or the key is wrong.
    #[error("the sealed value does not authenticate (changed, moved, or another key)")]
    Forged,
    /// The keyring has no data key to seal with.
    #[error("no data key: add one first")]
    NoDataKey,
    /// The AEAD implementation failed.
    #[error("AES-GCM failure")]
    Crypto,
}

/// AES-256-GCM under a key held elsewhere (a PKCS#11 token): the KEK
/// never enters this process; only the short values given are sealed and
/// opened.
pub trait KekCipher: Send + Sync {
    /// `plaintext` sealed under the key: ciphertext followed by the
    /// 16-byte tag.
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SecretError>;
    /// Opens what [`KekCipher::seal`] made with the same nonce and `aad`;
    /// [`SecretError::Forged`] when it does not authenticate.
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError>;
}

/// Where a KEK's key material is.
enum KekKey {
    /// In this process (from a file), wiped on drop.
    Bytes(Zeroizing<[u8; KEY_LEN]>),
    /// Outside (a token).
    External(Box<dyn KekCipher>),
}

/// A key-encryption key: 32 bytes (wiped on drop), or a key in a token
/// ([`Kek::external`]).
pub struct Kek {
    key: KekKey,
    id: [u8; 8],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", self.id_hex())
    }
}

impl Kek {
    /// A KEK from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest([b"ferrosim-kek-id".as_slice(), &bytes].concat());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self {
            key: KekKey::Bytes(Zeroizing::new(bytes)),
            id,
        }
    }

    /// A KEK held outside the process (a PKCS#11 token). Its id is derived
    /// from a fixed value it seals (a key check value), so it names the key
    /// itself, as for a KEK from a file.
    pub fn external(cipher: Box<dyn KekCipher>) -> Result<Self, SecretError> {
        let check = cipher.seal(&[0u8; NONCE_LEN], b"ferrosim-kek-id", &[])?;
        let digest = Sha256::digest([b"ferrosim-kek-id-external".as_slice(), &check].concat());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Ok(Self {
            key: KekKey::External(cipher),
            id,
        })
    }

    /// A KEK from a file's content: 32 raw bytes, or 64 hex digits (with or
    /// without a final newline).
    pub fn from_file_content(content: &[u8]) -> Result<Self, SecretError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if content.len() == KEY_LEN {
            key.copy_from_slice(content);
        } else {
            let text = std::str::from_utf8(content)
                .map_err(|_| SecretError::BadKek("neither 32 bytes nor 64 hex digits".into()))?
                .trim();
            let bytes =
                Zeroizing::new(hex::decode(text).map_err(|_| {
                    SecretError::BadKek("neither 32 bytes nor 64 hex digits".into())
                })?);
            if bytes.len() != KEY_LEN {
                return Err(SecretError::BadKek(format!(
                    "{} bytes of hex, 32 needed",
                    bytes.len()
                )));
            }
            key.copy_from_slice(&bytes);
        }
        Ok(Self::from_bytes(*key))
    }

    /// A fresh random KEK.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut *k);
        Self::from_bytes(*k)
    }

    /// The KEK's bytes as hex (to write a KEK file); `None` for a key
    /// held in a token.
    pub fn to_hex(&self) -> Option<Zeroizing<String>> {
        match &self.key {
            KekKey::Bytes(k) => Some(Zeroizing::new(hex::encode(**k))),
            KekKey::External(_) => None,
        }
    }

    /// Its identifier (not secret): names which KEK wrapped a data key.
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// [`Kek::id`] as hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// Data keys unwrapped in memory, the newest sealing new values.
pub struct Keyring {
    keys: BTreeMap<u32, Zeroizing<[u8; KEY_LEN]>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("data_keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn aead(key: &[u8; KEY_LEN]) -> Result<LessSafeKey, SecretError> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| SecretError::Crypto)?,
    ))
}

fn dek_aad(dek: u32) -> Vec<u8> {
    [DEK_DOMAIN, &dek.to_be_bytes()].concat()
}

impl Keyring {
    /// A keyring from stored wrapped data keys `(id, wrapped)`, unwrapped
    /// with `kek`.
    pub fn unwrap_all(
        kek: &Kek,
        wrapped: impl IntoIterator<Item = (u32, Vec<u8>)>,
    ) -> Result<Self, SecretError> {
        let mut keys = BTreeMap::new();
        for (id, w) in wrapped {
            keys.insert(id, unwrap_key(kek, id, &w)?);
        }
        Ok(Self { keys })
    }

    /// Makes a data key with the next id, returns it wrapped by `kek` (to
    /// store) and seals new values with it from now on.
    pub fn add_data_key(
        &mut self,
        kek: &Kek,
        rng: &mut impl CryptoRng,
    ) -> Result<(u32, Vec<u8>), SecretError> {
        let id = self.keys.keys().next_back().map_or(1, |k| k + 1);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut *key);
        let wrapped = wrap_key(kek, id, &key, rng)?;
        self.keys.insert(id, key);
        Ok((id, wrapped))
    }

    /// Every data key wrapped by `new_kek` (to replace the stored ones): KEK
    /// rotation, without re-encrypting any sealed value.
    pub fn rewrap(
        &self,
        new_kek: &Kek,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<(u32, Vec<u8>)>, SecretError> {
        self.keys
            .iter()
            .map(|(id, k)| Ok((*id, wrap_key(new_kek, *id, k, rng)?)))
            .collect()
    }

    /// Whether the keyring holds data key `id`.
    pub fn has_data_key(&self, id: u32) -> bool {
        self.keys.contains_key(&id)
    }

    /// The data key new values are sealed under, if any.
    pub fn newest_data_key(&self) -> Option<u32> {
        self.keys.keys().next_back().copied()
    }

    /// A copy of the keyring (to add a key to while this one keeps serving).
    pub fn clone_keys(&self) -> Self {
        Self {
            keys: self.keys.clone(),
        }
    }

    /// Seals `plaintext` under the newest data key, bound to `aad`.
    pub fn seal(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, SecretError> {
        let (id, key) = self.keys.iter().next_back().ok_or(SecretError::NoDataKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(1 + 4 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        aead(key)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| SecretError::Crypto)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a value sealed by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let (id, nonce, body) = split(sealed, 4)?;
        let id = u32::from_be_bytes(
            id.try_into()
                .map_err(|_| SecretError::Malformed("key id"))?,
        );
        let key = self.keys.get(&id).ok_or(SecretError::UnknownDataKey(id))?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = aead(key)?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| SecretError::Forged)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// The data key that sealed `sealed` (to find values of a retired key).
    pub fn data_key_of(sealed: &[u8]) -> Result<u32, SecretError> {
        let (id, _, _) = split(sealed, 4)?;
        Ok(u32::from_be_bytes(
            id.try_into()
                .map_err(|_| SecretError::Malformed("key id"))?,
        ))
    }
}

/// The parts of a sealed or wrapped value: id, nonce, body.
type Parts<'a> = (&'a [u8], [u8; NONCE_LEN], &'a [u8]);

/// `version || id (id_len) || nonce || body (at least the tag)`.
fn split(v: &[u8], id_len: usize) -> Result<Parts<'_>, SecretError> {
    let (&version, rest) = v.split_first().ok_or(SecretError::Malformed("empty"))?;
    if version != VERSION {
        return Err(SecretError::Malformed("unknown version"));
    }
    if rest.len() < id_len + NONCE_LEN + TAG_LEN {
        return Err(SecretError::Malformed("truncated"));
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| SecretError::Malformed("nonce"))?;
    Ok((id, nonce, body))
}

fn wrap_key(
    kek: &Kek,
    id: u32,
    key: &[u8; KEY_LEN],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, SecretError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let body = match &kek.key {
        KekKey::Bytes(k) => {
            let mut body = key.to_vec();
            aead(k)?
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(dek_aad(id)),
                    &mut body,
                )
                .map_err(|_| SecretError::Crypto)?;
            body
        }
        KekKey::External(c) => c.seal(&nonce, &dek_aad(id), key)?,
    };
    let mut out = vec![VERSION];
    out.extend_from_slice(&kek.id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

fn unwrap_key(kek: &Kek, id: u32, wrapped: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, SecretError> {
    let (kek_id, nonce, body) = split(wrapped, 8)?;
    if kek_id != kek.id {
        return Err(SecretError::OtherKek {
            dek: id,
            kek: hex::encode(kek_id),
        });
    }
    let plain = match &kek.key {
        KekKey::Bytes(k) => {
            let mut buf = Zeroizing::new(body.to_vec());
            let len = aead(k)?
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(dek_aad(id)),
                    &mut buf,
                )
                .map_err(|_| SecretError::Forged)?
                .len();
            buf.truncate(len);
            buf
        }
        KekKey::External(c) => c.open(&nonce, &dek_aad(id), body)?,
    };
    let key: [u8; KEY_LEN] = plain
        .as_slice()
        .try_into()
        .map_err(|_| SecretError::Malformed("data key length"))?;
    Ok(Zeroizing::new(key))
}

#[cfg(test)]
mod tests;
