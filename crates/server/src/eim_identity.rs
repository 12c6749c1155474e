//! The eIM's identity: its id, the key that signs eUICC packages (a key
//! file, or a key in a PKCS#11 token as for DPauth) and its certificate.
//!
//! On first start without configured files, [`ensure_eim_identity`]
//! generates a P-256 key and a self-signed certificate naming the eIM id and
//! FQDN in the PKI directory (`eIM/eim.pem`, `eIM/eim.key.pem`, key mode
//! 0600), beside the test PKI. What a device's eUICC needs to trust the eIM
//! (its public key) goes into the AddInitialEim file (`ferrosim eim
//! bootstrap`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrosim_crypto::key::{KeySource, SoftwareKey};
use ferrosim_crypto::pkcs11::Pkcs11Key;
use ferrosim_pki::generate::KeySourceSigner;
use ferrosim_pki::load;
use thiserror::Error;
use tracing::info;
use zeroize::Zeroizing;

/// Why the eIM identity could not be made or loaded.
#[derive(Debug, Error)]
pub enum EimIdentityError {
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Generating the key or the certificate failed.
    #[error("generating the eIM identity: {0}")]
    Generate(String),
    /// The PKCS#11 token refused.
    #[error("PKCS#11 key `{label}`: {source}")]
    Pkcs11 {
        /// Key label.
        label: String,
        /// Why.
        source: ferrosim_crypto::Error,
    },
}

/// Where the eIM's certificate and key files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EimPaths {
    /// The eIM certificate (PEM).
    pub certificate: PathBuf,
    /// Its key (PEM PKCS#8; unused with a PKCS#11 key).
    pub key: PathBuf,
}

impl EimPaths {
    /// `DIR/eIM/eim.pem` and `DIR/eIM/eim.key.pem`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            certificate: dir.join("eIM").join("eim.pem"),
            key: dir.join("eIM").join("eim.key.pem"),
        }
    }
}

/// The eIM key in a PKCS#11 token.
#[derive(Clone)]
pub struct EimPkcs11 {
    /// The module.
    pub module: PathBuf,
    /// Token label.
    pub token: String,
    /// User PIN.
    pub pin: Zeroizing<String>,
    /// CKA_LABEL of the eIM key.
    pub label: String,
}

impl std::fmt::Debug for EimPkcs11 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EimPkcs11")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// The eIM's loaded identity.
#[derive(Debug, Clone)]
pub struct EimIdentity {
    /// Signs eUICC packages.
    pub key: Arc<dyn KeySource>,
    /// The eIM certificate (DER).
    pub certificate_der: Vec<u8>,
}

impl EimIdentity {
    /// The eIM's public key as a SubjectPublicKeyInfo DER (P-256), as
    /// `EimConfigurationData.eimPublicKeyData` carries it.
    pub fn public_key_spki(&self) -> Vec<u8> {
        p256_spki(self.key.public_key_sec1())
    }
}

/// SubjectPublicKeyInfo of a P-256 SEC1 point.
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 00 || point }
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08,
        0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(point);
    out
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> EimIdentityError {
    EimIdentityError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Generates the eIM's key and self-signed certificate in `paths` unless the
/// certificate exists; with `pkcs11`, the key stays in the token and only the
/// certificate is written. Returns whether it generated.
pub fn ensure_eim_identity(
    paths: &EimPaths,
    eim_id: &str,
    fqdn: &str,
    pkcs11: Option<&EimPkcs11>,
) -> Result<bool, EimIdentityError> {
    if paths.certificate.exists() {
        return Ok(false);
    }
    let dir = paths
        .certificate
        .parent()
        .ok_or_else(|| file_err(&paths.certificate, "no directory"))?;
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let key: Arc<dyn KeySource> = match pkcs11 {
        Some(k) => open_pkcs11(k)?,
        None => {
            let key =
                SoftwareKey::generate().map_err(|e| EimIdentityError::Generate(e.to_string()))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| EimIdentityError::Generate(e.to_string()))?;
            let text = Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec())));
            write_private(&paths.key, text.as_bytes())?;
            Arc::new(key)
        }
    };
    let signer = KeySourceSigner::new(key.as_ref())
        .map_err(|e| EimIdentityError::Generate(e.to_string()))?;
    let host = fqdn.rsplit_once(':').map_or(fqdn, |(h, _)| h).to_owned();
    let mut params = rcgen::CertificateParams::new(vec![host])
        .map_err(|e| EimIdentityError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, eim_id);
    params.not_before = SystemTime::now().into();
    params.not_after = (SystemTime::now() + Duration::from_secs(10 * 365 * 24 * 3600)).into();
    let cert = params
        .self_signed(&signer)
        .map_err(|e| EimIdentityError::Generate(e.to_string()))?;
    std::fs::write(&paths.certificate, cert.pem()).map_err(|e| file_err(&paths.certificate, e))?;
    info!(certificate = %paths.certificate.display(), eim_id, "generated the eIM identity");
    Ok(true)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EimIdentityError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))
}

fn open_pkcs11(k: &EimPkcs11) -> Result<Arc<dyn KeySource>, EimIdentityError> {
    let key = Pkcs11Key::open(&k.module, &k.token, &k.pin, &k.label).map_err(|source| {
        EimIdentityError::Pkcs11 {
            label: k.label.clone(),
            source,
        }
    })?;
    Ok(Arc::new(key))
}

/// Loads the eIM's certificate and its key (from the key file, or from the
/// token with `pkcs11`).
pub fn load_eim_identity(
    paths: &EimPaths,
    pkcs11: Option<&EimPkcs11>,
) -> Result<EimIdentity, EimIdentityError> {
    let text = std::fs::read(&paths.certificate).map_err(|e| file_err(&paths.certificate, e))?;
    let certificate_der = match pem::parse(&text) {
        Ok(p) => p.into_contents(),
        Err(_) => text,
    };
    let key: Arc<dyn KeySource> = match pkcs11 {
        Some(k) => open_pkcs11(k)?,
        None => Arc::new(load::key_from_file(&paths.key).map_err(|e| file_err(&paths.key, e))?),
    };
    Ok(EimIdentity {
        key,
        certificate_der,
    })
}
