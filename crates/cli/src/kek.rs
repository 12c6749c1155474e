//! The key-encryption key (KEK) of an instance: read from its file
//! (`[secrets] kek_file`, `FERROSIM_KEK_FILE`, `--kek-file`) or used inside
//! a PKCS#11 token (`[secrets] kek_pkcs11_label`), and given to the store,
//! so that every command opening the instance seals profile secrets; a
//! database whose secrets are sealed is refused without it.
//!
//! Errors name the file or key and what is wrong with it, never the key.

use std::path::Path;

use anyhow::{Context, bail};
use ferrosim_crypto::pkcs11_aes::{NOT_AUTHENTIC, Pkcs11AesKey};
use ferrosim_secrets::{Kek, KekCipher, SecretError};
use ferrosim_store::SqlStore;
use zeroize::Zeroizing;

use crate::secrets_config::SecretsConfig;

/// The configured KEK, if any: the file, or the key in the token.
pub fn configured(cfg: &SecretsConfig) -> anyhow::Result<Option<Kek>> {
    match (&cfg.kek_file, &cfg.kek_pkcs11_label) {
        (Some(_), Some(_)) => bail!(
            "[secrets]: give kek_file (FERROSIM_KEK_FILE, --kek-file) or kek_pkcs11_label, not both"
        ),
        (Some(path), None) => load(path).map(Some),
        (None, Some(label)) => token_key(cfg, label, false).map(Some),
        (None, None) => Ok(None),
    }
}

/// Where the configured KEK is, for messages.
pub fn describe(cfg: &SecretsConfig) -> String {
    match (&cfg.kek_file, &cfg.kek_pkcs11_label, &cfg.kek_pkcs11) {
        (Some(path), _, _) => path.display().to_string(),
        (None, Some(label), Some(t)) => format!("key {label:?} in PKCS#11 token {:?}", t.token),
        (None, Some(label), None) => format!("key {label:?}"),
        (None, None, _) => "no key-encryption key".to_owned(),
    }
}

/// The AES key `label` in the token of `[secrets.kek_pkcs11]` as a KEK;
/// with `generate`, made first (refused when the label exists).
pub fn token_key(cfg: &SecretsConfig, label: &str, generate: bool) -> anyhow::Result<Kek> {
    let t = cfg.kek_pkcs11.as_ref().context(
        "a key-encryption key in a PKCS#11 token needs [secrets.kek_pkcs11] with `module` and `token`",
    )?;
    let pin = Zeroizing::new(std::env::var(&t.pin_env).with_context(|| {
        format!(
            "the PKCS#11 PIN of the key-encryption key's token must be in the environment variable {}",
            t.pin_env
        )
    })?);
    let key = if generate {
        Pkcs11AesKey::generate(&t.module, &t.token, &pin, label)
    } else {
        Pkcs11AesKey::open(&t.module, &t.token, &pin, label)
    }
    .with_context(|| {
        format!(
            "key-encryption key {label:?} in PKCS#11 token {:?} ({})",
            t.token,
            t.module.display()
        )
    })?;
    Kek::external(Box::new(TokenKek(key))).with_context(|| {
        format!(
            "key-encryption key {label:?} in PKCS#11 token {:?}",
            t.token
        )
    })
}

/// A KEK inside a PKCS#11 token.
struct TokenKek(Pkcs11AesKey);

impl KekCipher for TokenKek {
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        self.0.seal(nonce, aad, plaintext).map_err(|e| {
            tracing::warn!(error = %e, "the PKCS#11 token refused to seal");
            SecretError::Crypto
        })
    }

    fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        match self.0.open_sealed(nonce, aad, sealed) {
            Ok(v) => Ok(Zeroizing::new(v)),
            Err(ferrosim_crypto::Error::Pkcs11Object(m)) if m == NOT_AUTHENTIC => {
                Err(SecretError::Forged)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the PKCS#11 token refused to open");
                Err(SecretError::Crypto)
            }
        }
    }
}

/// Reads a KEK file: 32 raw bytes or 64 hex digits. Warns when other
/// users may read it.
pub fn load(path: &Path) -> anyhow::Result<Kek> {
    use std::os::unix::fs::PermissionsExt;
    let content = zeroize::Zeroizing::new(std::fs::read(path).with_context(|| {
        format!(
            "reading the key-encryption key file {} ([secrets] kek_file, FERROSIM_KEK_FILE, \
             --kek-file; `ferrosim keys init` makes one)",
            path.display()
        )
    })?);
    let kek = Kek::from_file_content(&content)
        .with_context(|| format!("the key-encryption key file {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the key-encryption key file is open to other users: chmod 600 it"
        );
    }
    Ok(kek)
}

/// `store` sealing with the configured KEK; without one, refuses a
/// database whose secrets are sealed (nothing could open them, and rows
/// written in clear would sit beside sealed ones).
pub async fn apply(store: SqlStore, cfg: &SecretsConfig) -> anyhow::Result<SqlStore> {
    let kek = match configured(cfg) {
        Ok(k) => k,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let Some(kek) = kek else {
        let keys = match store.data_keys().await {
            Ok(k) => k,
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
        if let Some(first) = keys.first() {
            store.close().await;
            bail!(
                "the instance's profile secrets are encrypted (data keys wrapped by the \
                 key-encryption key {}): give it with [secrets] kek_file, \
                 FERROSIM_KEK_FILE, --kek-file or [secrets] kek_pkcs11_label",
                first.kek_id
            );
        }
        return Ok(store);
    };
    let id = kek.id_hex();
    let probe = store.clone();
    match store.with_kek(kek).await {
        Ok(s) => Ok(s),
        Err(e) => {
            probe.close().await;
            Err(anyhow::Error::new(e).context(format!(
                "the key-encryption key {id} ({}) does not open the instance's data keys",
                describe(cfg)
            )))
        }
    }
}
