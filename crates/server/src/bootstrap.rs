//! Assembling an SM-DP+ instance from files: the test PKI generated on first
//! start, or certificates and keys given by path (SGP.26 test set,
//! production), with the DPauth and DPpb keys optionally in a PKCS#11 token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrosim_crypto::key::KeySource;
use ferrosim_crypto::pkcs11::Pkcs11Key;
use ferrosim_pki::generate::layout;
use ferrosim_pki::{CertRole, Oid, RspCertificate, TestPki, TestPkiOptions, TrustStore, load};
use ferrosim_smdp::Credential;
use thiserror::Error;
use tracing::info;
use zeroize::Zeroizing;

use crate::TlsIdentity;

/// Why the instance's identity could not be assembled.
#[derive(Debug, Error)]
pub enum BootstrapError {
    /// A certificate or key file failed to load or is of the wrong kind.
    #[error("{path}: {source}")]
    Pki {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ferrosim_pki::Error,
    },
    /// Generating the test PKI failed.
    #[error("generating the test PKI: {0}")]
    Generate(ferrosim_pki::Error),
    /// The PKCS#11 token refused.
    #[error("PKCS#11 key `{label}`: {source}")]
    Pkcs11 {
        /// Key label.
        label: String,
        /// Why.
        source: ferrosim_crypto::Error,
    },
    /// The TLS key cannot be exported for rustls.
    #[error("TLS key: {0}")]
    TlsKey(ferrosim_crypto::Error),
}

/// Where the SM-DP+'s certificates and keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// CI certificates to trust (PEM or DER; a file may hold several PEM certificates).
    pub ci_certs: Vec<PathBuf>,
    /// CERT.DPauth.SIG.
    pub dpauth_cert: PathBuf,
    /// Its key (unused when the key is in a PKCS#11 token).
    pub dpauth_key: PathBuf,
    /// CERT.DPpb.SIG.
    pub dppb_cert: PathBuf,
    /// Its key (unused when the key is in a PKCS#11 token).
    pub dppb_key: PathBuf,
    /// The TLS certificate (CERT.DP.TLS), possibly followed by its chain.
    pub tls_cert: PathBuf,
    /// Its key.
    pub tls_key: PathBuf,
}

impl PkiPaths {
    /// The paths inside a directory with the `ferrosim pki init` layout.
    pub fn in_dir(dir: &Path) -> Self {
        let pair =
            |role| layout(dir, role).unwrap_or_else(|| (dir.join("missing"), dir.join("missing")));
        let (ci, _) = pair(CertRole::Ci);
        let (dpauth_cert, dpauth_key) = pair(CertRole::DpAuth);
        let (dppb_cert, dppb_key) = pair(CertRole::DpPb);
        let (tls_cert, tls_key) = pair(CertRole::DpTls);
        Self {
            ci_certs: vec![ci],
            dpauth_cert,
            dpauth_key,
            dppb_cert,
            dppb_key,
            tls_cert,
            tls_key,
        }
    }
}

/// DPauth and DPpb private keys held in a PKCS#11 token.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs11Keys {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// Token label.
    pub token: String,
    /// User PIN (wiped from memory when dropped).
    pub pin: Zeroizing<String>,
    /// CKA_LABEL of the DPauth key.
    pub dpauth_label: String,
    /// CKA_LABEL of the DPpb key.
    pub dppb_label: String,
}

impl std::fmt::Debug for Pkcs11Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Keys")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("dpauth_label", &self.dpauth_label)
            .field("dppb_label", &self.dppb_label)
            .finish_non_exhaustive()
    }
}

/// Everything an SM-DP+ instance signs and serves with.
#[derive(Debug, Clone)]
pub struct SmdpIdentity {
    /// CERT.DPauth.SIG and key.
    pub dpauth: Credential,
    /// CERT.DPpb.SIG and key.
    pub dppb: Credential,
    /// Trusted CIs.
    pub trust: TrustStore,
    /// TLS certificate chain and key.
    pub tls: TlsIdentity,
}

/// Generates a test PKI in `dir` unless one is there, with a DPtls
/// certificate for the host of `smdp_address` (`host[:port]`; an IP address
/// goes into an IP subjectAltName). Returns whether it did.
pub fn ensure_test_pki(
    dir: &Path,
    smdp_address: &str,
    smdp_oid: Option<&Oid>,
    euiccs: usize,
) -> Result<bool, BootstrapError> {
    let paths = PkiPaths::in_dir(dir);
    if paths.dpauth_cert.exists() {
        return Ok(false);
    }
    let mut options = TestPkiOptions {
        euicc_count: euiccs,
        smdp_address: smdp_address.to_owned(),
        ..TestPkiOptions::default()
    };
    if let Some(oid) = smdp_oid {
        options.smdp_oid = oid.clone();
    }
    let pki = TestPki::generate(&options).map_err(BootstrapError::Generate)?;
    pki.write_to(dir).map_err(BootstrapError::Generate)?;
    info!(dir = %dir.display(), "generated a test PKI (GSMA SGP.26 layout)");
    Ok(true)
}

/// Loads certificates and keys; with `pkcs11`, the DPauth and DPpb keys come
/// from the token and the key files are not read.
pub fn load_identity(
    paths: &PkiPaths,
    pkcs11: Option<&Pkcs11Keys>,
) -> Result<SmdpIdentity, BootstrapError> {
    let cert = |p: &Path| {
        load::certificate_from_file(p).map_err(|source| BootstrapError::Pki {
            path: p.to_owned(),
            source,
        })
    };
    let soft_key = |p: &Path| -> Result<Arc<dyn KeySource>, BootstrapError> {
        let key = load::key_from_file(p).map_err(|source| BootstrapError::Pki {
            path: p.to_owned(),
            source,
        })?;
        Ok(Arc::new(key))
    };
    let token_key = |k: &Pkcs11Keys, label: &str| -> Result<Arc<dyn KeySource>, BootstrapError> {
        let key = Pkcs11Key::open(&k.module, &k.token, &k.pin, label).map_err(|source| {
            BootstrapError::Pkcs11 {
                label: label.to_owned(),
                source,
            }
        })?;
        Ok(Arc::new(key))
    };
    let mut trust = TrustStore::new();
    for p in &paths.ci_certs {
        let certs = load::certificates_from_file(p).map_err(|source| BootstrapError::Pki {
            path: p.clone(),
            source,
        })?;
        for c in certs {
            trust.add_ci(c).map_err(|source| BootstrapError::Pki {
                path: p.clone(),
                source,
            })?;
        }
    }
    let (dpauth_key, dppb_key) = match pkcs11 {
        Some(k) => (token_key(k, &k.dpauth_label)?, token_key(k, &k.dppb_label)?),
        None => (soft_key(&paths.dpauth_key)?, soft_key(&paths.dppb_key)?),
    };
    let tls_chain =
        load::certificates_from_file(&paths.tls_cert).map_err(|source| BootstrapError::Pki {
            path: paths.tls_cert.clone(),
            source,
        })?;
    let tls_key = load::key_from_file(&paths.tls_key).map_err(|source| BootstrapError::Pki {
        path: paths.tls_key.clone(),
        source,
    })?;
    let key_pkcs8_der = tls_key
        .to_pkcs8_der()
        .map_err(BootstrapError::TlsKey)?
        .to_vec();
    Ok(SmdpIdentity {
        dpauth: Credential {
            certificate: cert(&paths.dpauth_cert)?,
            key: dpauth_key,
        },
        dppb: Credential {
            certificate: cert(&paths.dppb_cert)?,
            key: dppb_key,
        },
        trust,
        tls: TlsIdentity {
            cert_chain_der: tls_chain
                .iter()
                .map(|c: &RspCertificate| c.der().to_vec())
                .collect(),
            key_pkcs8_der,
        },
    })
}
