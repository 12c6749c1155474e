//! Profile secrets sealed at rest: the personalisation column (K, OPc,
//! PIN/PUK, ADM and the rest of the operator data) kept as one AES-256-GCM
//! value of `ferrosim-secrets` instead of clear JSON.
//!
//! The stored text is `sealed1:` followed by the hex of the sealed value,
//! which names the data key that sealed it (so rotation can find the rows
//! of a retired key) and is bound by associated data to its row (the
//! ICCID) and column: a value copied to another profile does not open.
//! Clear JSON (what databases made before sealing hold) is still read, so
//! an old database keeps serving while it is migrated in place.
//!
//! Errors are typed ([`SealError`]) and never carry a secret.

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_secrets::{Keyring, SecretError};
use ferrosim_smdp::store::StoreError;
use rand::CryptoRng;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::personalisation::{decode_personalisation, encode_personalisation};

/// Prefix of a sealed personalisation (format version 1).
pub const SEALED_PREFIX: &str = "sealed1:";

/// Associated-data domain: the table and column a sealed value belongs to.
const AAD_DOMAIN: &[u8] = b"ferrosim profiles.personalisation ";

/// Why a stored personalisation could not be sealed or opened.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    /// The value is sealed but the store was opened without a keyring.
    #[error("the profile secrets are encrypted and no key-encryption key was given")]
    NoKeyring,
    /// Sealing or opening failed: unknown data key, tampered or moved
    /// value, wrong key.
    #[error("profile secrets: {0}")]
    Secret(#[from] SecretError),
    /// The stored text is neither sealed nor clear personalisation.
    #[error("profile secrets: {0}")]
    Malformed(&'static str),
    /// The opened value names another ICCID than its row.
    #[error("profile secrets: sealed value belongs to another profile")]
    OtherRow,
}

impl From<SealError> for StoreError {
    fn from(e: SealError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// How a personalisation is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredForm {
    /// Clear JSON (a database made before sealing): to migrate.
    Clear,
    /// Sealed under this data key.
    Sealed {
        /// The data key id named beside the ciphertext.
        data_key: u32,
    },
}

/// What form `stored` is in, without opening it.
pub fn stored_form(stored: &str) -> Result<StoredForm, SealError> {
    if let Some(hex_text) = stored.strip_prefix(SEALED_PREFIX) {
        let bytes = hex::decode(hex_text).map_err(|_| SealError::Malformed("not hex"))?;
        return Ok(StoredForm::Sealed {
            data_key: Keyring::data_key_of(&bytes)?,
        });
    }
    if stored.starts_with('{') {
        return Ok(StoredForm::Clear);
    }
    Err(SealError::Malformed("neither sealed nor clear"))
}

fn aad(iccid: &Iccid) -> Vec<u8> {
    [AAD_DOMAIN, iccid.as_str().as_bytes()].concat()
}

/// The stored text of `p` sealed under the keyring's newest data key, bound
/// to its ICCID.
pub fn seal_personalisation(
    keyring: &Keyring,
    p: &Personalisation,
    rng: &mut impl CryptoRng,
) -> Result<String, SealError> {
    let clear = Zeroizing::new(encode_personalisation(p));
    let sealed = keyring.seal(&aad(&p.iccid), clear.as_bytes(), rng)?;
    Ok(format!("{SEALED_PREFIX}{}", hex::encode(sealed)))
}

/// Reads back the personalisation of row `iccid`, sealed or clear. A sealed
/// one needs `keyring`; it must open under its row's ICCID and name it.
pub fn open_personalisation(
    keyring: Option<&Keyring>,
    iccid: &Iccid,
    stored: &str,
) -> Result<Personalisation, StoreError> {
    let p = match stored_form(stored)? {
        StoredForm::Clear => decode_personalisation(stored)?,
        StoredForm::Sealed { .. } => {
            let keyring = keyring.ok_or(SealError::NoKeyring)?;
            let bytes = hex::decode(&stored[SEALED_PREFIX.len()..])
                .map_err(|_| SealError::Malformed("not hex"))?;
            let clear = keyring.open(&aad(iccid), &bytes).map_err(SealError::from)?;
            let text =
                std::str::from_utf8(&clear).map_err(|_| SealError::Malformed("not UTF-8"))?;
            decode_personalisation(text)?
        }
    };
    if &p.iccid != iccid {
        return Err(SealError::OtherRow.into());
    }
    Ok(p)
}

#[cfg(test)]
mod tests;
